"""Test-suite settings shared by every test file."""

import torch

# One intra-op thread: the tests use small tensors, for which thread start-up and
# oversubscription on a shared 2-core machine cost far more than they save.
torch.set_num_threads(1)
