"""The CI fuzz suite (issue 13): seeded mutations of small models, rule files and the file system
around them, each run through the real CLI (tests/fuzzing.py), must give only clean outcomes:
exit 0, 1 or 2 with one clear line, IN untouched, nothing from outside IN in OUT, no temporaries.

The CI subset leaves out --to 2.x conversions of TF 1.x models (each starts TensorFlow);
`--full-matrix` adds a long run with them. tools/fuzz.py runs any number of cases.
"""

import os

import pytest

import fuzzing

#: CI: cases, seed, per-case wall timeout (a clean case takes about 2 s of CPU).
CI_CASES, CI_SEED, CI_TIMEOUT = 50, 13, 30.0  # seed 13 meets every mutator and seed model by case 38
LONG_CASES, LONG_SEED = 1000, 1


def _run(tmp_path, seed, cases, allow_upgrade):
    results = fuzzing.run(seed, range(cases), tmp_path, CI_TIMEOUT if not allow_upgrade else 60.0,
                          jobs=min(2, os.cpu_count() or 1), allow_upgrade=allow_upgrade)
    assert len(results) == cases
    return results


def _assert_clean(results):
    bad = [r for r in results if r.bad]
    assert not bad, fuzzing.summary(results)


def test_ci_fuzz_subset_has_only_clean_outcomes(tmp_path):
    results = _run(tmp_path, CI_SEED, CI_CASES, allow_upgrade=False)
    # the subset exercises every mutator and every seed model, and all three clean exits
    assert {m for r in results for m in r.case.mutators} == set(fuzzing.MUTATORS)
    assert {r.case.model for r in results} == {s.name for s in fuzzing.SEEDS}
    assert {r.outcome for r in results} >= {"exit 0", "exit 1", "exit 2"}, fuzzing.counts(results)
    _assert_clean(results)


@pytest.mark.full_matrix
def test_long_fuzz_run_has_only_clean_outcomes(tmp_path):
    _assert_clean(_run(tmp_path, LONG_SEED, LONG_CASES, allow_upgrade=True))


def test_classifier_sees_what_it_must(tmp_path):
    """The fuzzer's own judge: a changed IN, a secret in OUT, a temp dir and a multi-line error are findings."""
    case, work = fuzzing.build_case(CI_SEED, 0, tmp_path / "c")
    before = fuzzing.tree_state(work.in_tree)
    victim = work.model_files()[0]
    os.utime(victim, ns=(1, 1))
    work.out.mkdir() if not work.out.suffix else None
    (work.out if work.out.is_dir() else work.out.parent).joinpath("leak").write_bytes(work.marker)
    (work.out.parent / ".tf-transpile-1-x").mkdir()
    found = fuzzing._findings(work, 2, "tf-transpile: error: a\nmore\n", 10.0, fuzzing.GIB, before, {})
    kinds = [f.split(":")[0] for f in found]
    assert "stderr not one line" in kinds and "IN changed" in kinds and "temp left" in kinds
    assert "outside bytes in OUT" in kinds or not work.out.is_dir()
    assert fuzzing._findings(work, 3, "Traceback (most recent call last):\n", 1.0, fuzzing.GIB,
                             fuzzing.tree_state(work.in_tree), {})[0].startswith("exit 3")


def test_classifier_leaves_in_out_of_the_leak_check(tmp_path):
    """OUT the parent of IN (refused) holds IN, and IN a link to the secret: no leak into OUT."""
    case, work = fuzzing.build_case(CI_SEED, 1, tmp_path / "c")
    (work.in_tree / "linked").symlink_to(work.outside / "secret.txt")
    assert fuzzing._contains_marker([work.in_tree.parent], work.marker, work.in_tree) == []
    (work.in_tree.parent / "leak").symlink_to(work.outside / "secret.txt")
    assert fuzzing._contains_marker([work.in_tree.parent], work.marker, work.in_tree) == [
        str(work.in_tree.parent / "leak")]
