"""descentlab — optimization for deep learning on PyTorch, equation by equation."""

__version__ = "0.1.0"
