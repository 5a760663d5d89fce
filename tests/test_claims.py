"""Every claim of the notes runs, is judged by its predicate and agrees with its recorded verdict.

A claim whose measurement no longer agrees with the verdict recorded for it (``Claim.expected``) fails
here: a refuted claim stays refuted until the library's behaviour changes, and then the claim is
looked at again rather than its setup tuned.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from descentlab.claims import CLAIMS, NOTES, Claim, check, get_claim

NOTES_DIR = Path(__file__).resolve().parents[2] / "shared" / "course-notes"
if not NOTES_DIR.exists():  # a worktree beside /work/shared, or a clone with shared/ next to it
    NOTES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "course-notes"


def _normal(text: str) -> str:
    text = text.replace("\\beta", "β").replace("\\eta", "η").replace("’", "'")
    text = re.sub(r"[$*\\]", "", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def test_there_are_at_least_the_nineteen_claims_of_the_issue():
    assert len(CLAIMS) >= 19
    assert len({c.slug for c in CLAIMS}) == len(CLAIMS)


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.slug for c in CLAIMS])
def test_the_claim_is_quoted_from_its_note(claim: Claim):
    path = NOTES_DIR / NOTES[claim.source.split()[-1]]
    if not path.exists():
        pytest.skip(f"the course notes are not at {NOTES_DIR}")
    note = _normal(path.read_text(encoding="utf-8"))
    for fragment in claim.text.split("..."):
        assert _normal(fragment) in note, f"{fragment!r} is not in {path.name}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("claim", CLAIMS, ids=[c.slug for c in CLAIMS])
def test_every_claim_is_judged_as_recorded(claim: Claim, tmp_path):
    verdict = check(claim, out=tmp_path)
    assert verdict.as_recorded, f"{claim.slug}: recorded {claim.expected}, measured: {verdict.summary}"
    assert verdict.mark == ("✓" if claim.expected == "holds" else "refuted")
    assert verdict.summary and verdict.numbers
    assert (tmp_path / f"{claim.slug}.png").stat().st_size > 5000
    data = verdict.to_json()
    assert data["command"] == f"descentlab claims {claim.slug} --out runs/claims"
    assert data["numbers"]


def test_a_predicate_can_fail_and_then_the_mark_says_so():
    claim = get_claim("momentum-jumps-local-minima")
    holds, why = claim.predicate(
        {
            **{
                f"{label} minimum": "shallow"
                for label in ("GD", "momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam")
            },
            **{
                f"{label} iterations": "10"
                for label in ("GD", "momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam")
            },
        }
    )
    assert holds is False and "momentum shallow" in why


def test_unknown_claims_name_the_closest():
    with pytest.raises(ValueError, match="did you mean 'noise-escapes-a-saddle'"):
        get_claim("noise-escape-saddle")


def test_a_claim_must_cite_a_note_and_a_verdict():
    with pytest.raises(ValueError, match="expected"):
        Claim("x", "t", "notes 001", "h", lambda: None, lambda n: (True, ""), "maybe")
    with pytest.raises(ValueError, match="source"):
        Claim("x", "t", "notes 009", "h", lambda: None, lambda n: (True, ""), "holds")
