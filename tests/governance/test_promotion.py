"""The promotion gate: four eyes against requester and trainer, evidence, regressions."""

from __future__ import annotations

import pytest

from governance.promotion import (
    Evaluation,
    PromotionDenial,
    PromotionFacts,
    PromotionPolicy,
    check_approval,
    compare,
    lower_is_better,
    regressions,
)


def _evaluation(**metrics: tuple[float | None, float | None]) -> Evaluation:
    return Evaluation(
        family="delay",
        challenger_version="2",
        champion_version="1",
        data="held-out world w (sha256 abc)",
        metrics={
            k.replace("__", "/"): {"challenger": new, "champion": old}
            for k, (new, old) in metrics.items()
        },
    )


def _facts(evaluation: Evaluation | None, trained_by: str | None = "tom") -> PromotionFacts:
    return PromotionFacts("delay", "2", "eve", trained_by, evaluation)


GOOD = _evaluation(test__mae_hours=(10.0, 12.0), test__breach_auc=(0.81, 0.80))


def test_a_controller_who_neither_asked_nor_trained_may_approve() -> None:
    ruling = check_approval(_facts(GOOD), "carl", "controller")
    assert ruling.allowed and not ruling.overridden and ruling.denial is None
    assert check_approval(_facts(GOOD), "ada", "admin").allowed


@pytest.mark.parametrize(
    ("approver", "role", "trained_by", "denial"),
    [
        ("tom", "controller", "tom", PromotionDenial.TRAINER_APPROVAL),
        ("eve", "admin", "tom", PromotionDenial.SELF_APPROVAL),
        ("cleo", "clerk", "tom", PromotionDenial.NOT_AN_APPROVER),
        ("mia", "ml_engineer", "tom", PromotionDenial.NOT_AN_APPROVER),
        ("carl", "controller", None, PromotionDenial.TRAINER_UNKNOWN),
    ],
)
def test_who_may_not_approve(
    approver: str, role: str, trained_by: str | None, denial: PromotionDenial
) -> None:
    ruling = check_approval(_facts(GOOD, trained_by), approver, role)
    assert not ruling.allowed
    assert ruling.denial is denial
    assert ruling.message


def test_no_evaluation_no_promotion() -> None:
    assert (
        check_approval(_facts(None), "carl", "controller").denial is PromotionDenial.NO_EVALUATION
    )
    empty = _evaluation()
    assert check_approval(_facts(empty), "carl", "controller").denial is (
        PromotionDenial.NO_EVALUATION
    )


def test_a_regression_beyond_the_margin_needs_a_recorded_override() -> None:
    worse = _evaluation(test__mae_hours=(13.0, 12.0), test__breach_auc=(0.81, 0.80))
    refused = check_approval(_facts(worse), "carl", "controller")
    assert refused.denial is PromotionDenial.REGRESSION
    assert refused.regressions == ("test/mae_hours",)
    assert not check_approval(_facts(worse), "carl", "controller", "   ").allowed
    allowed = check_approval(_facts(worse), "carl", "controller", "new queue layout")
    assert allowed.allowed and allowed.overridden
    assert allowed.regressions == ("test/mae_hours",)


def test_the_margin_is_the_larger_of_absolute_and_relative() -> None:
    # 12.0 -> 12.1 is 0.8 % worse: inside the default 1 % relative margin; 12.2 is not.
    assert regressions(_evaluation(test__mae_hours=(12.1, 12.0))) == []
    assert regressions(_evaluation(test__mae_hours=(12.2, 12.0))) == ["test/mae_hours"]
    # A small value: the 0.005 absolute margin is the larger one.
    assert regressions(_evaluation(test__breach_brier=(0.104, 0.100))) == []
    assert regressions(_evaluation(test__breach_brier=(0.106, 0.100))) == ["test/breach_brier"]
    assert regressions(_evaluation(test__recall=(0.975, 0.980))) == []
    assert regressions(_evaluation(test__recall=(0.969, 0.980))) == ["test/recall"]
    strict = PromotionPolicy(absolute_margin=0.0, relative_margin=0.0)
    assert regressions(_evaluation(test__recall=(0.979, 0.980)), strict) == ["test/recall"]


def test_counts_baselines_and_new_metrics_are_not_regressions() -> None:
    evaluation = _evaluation(
        test__documents=(10.0, 500.0),
        test__baseline_queue_median_mae_hours=(30.0, 10.0),
        test__new_metric=(0.5, None),
        test__queue_clean__mae_hours=(1.0, 1.0),
    )
    assert [r.metric for r in compare(evaluation)] == [
        "test/new_metric",
        "test/queue_clean/mae_hours",
    ]
    assert regressions(evaluation) == []
    # A metric the champion was measured on and the challenger was not is a gap in evidence.
    assert regressions(_evaluation(test__recall=(None, 0.98))) == ["test/recall"]


def test_metric_direction() -> None:
    assert lower_is_better("test/mae_hours")
    assert lower_is_better("test/breach_brier")
    assert lower_is_better("bpic_DomesticDeclarations/mae_days")
    assert not lower_is_better("test/recall")
    assert not lower_is_better("test/macro_f1")


def test_the_evaluation_travels_as_json() -> None:
    again = Evaluation.from_dict(GOOD.to_dict())
    assert again == GOOD or again.to_dict() == GOOD.to_dict()
    first_time = Evaluation("delay", "1", None, "stored", {"test/mae_hours": {"challenger": 3.0}})
    assert Evaluation.from_dict(first_time.to_dict()).champion_version is None
