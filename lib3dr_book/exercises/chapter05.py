"""Visible checks for chapter 5's exercises (pose tracking).

Exercise 5.1 ``check_predict(predict)``: a constant-velocity prediction of the next camera, checked
on a camera that really moves at constant velocity (it must be predicted exactly) and on a circle.
Exercise 5.2 ``check_lost(lost)``: flagging a frame whose loss says the track is lost.

Each check raises ``AssertionError`` saying what is wrong and returns True when the answer passes.
They hold no answers; the chapter's hidden tests decide the points.
"""
import math

import torch

from lib3dr_book.exercises import shortcuts

PREDICT_SHORTCUTS = ("lib3dr.pose._predict",)


def _line(n):
    """Camera centres moving at constant velocity: (n, 3)."""
    return torch.tensor([2.5, 1.0, 0.5]) + torch.arange(n, dtype=torch.float32)[:, None] * torch.tensor([-0.1, 0.02, 0.15])


def _circle(n):
    """Camera centres on a circle of radius 2.7 at height 1, 2 degrees apart: (n, 3)."""
    angles = torch.arange(n, dtype=torch.float32) * math.radians(2.0)
    return torch.stack([2.7 * torch.sin(angles), torch.ones(n), 2.7 * torch.cos(angles)], -1)


def _rounded(x):
    return [round(v, 4) for v in x.tolist()]


def check_predict(predict):
    """Exercise 5.1: ``predict(estimates)`` takes the list of (3,) camera positions estimated so
    far (at least one) and returns the (3,) constant-velocity guess for the next frame (the last
    estimate itself when there is only one)."""
    def call(estimates):
        return shortcuts.call_honestly(predict, (estimates,), targets=PREDICT_SHORTCUTS,
                                       why="write the prediction yourself")

    path = _line(8)
    one = call([path[0].clone()])
    assert torch.is_tensor(one) and tuple(one.shape) == (3,), (
        f"predict must return a (3,) tensor, got {type(one).__name__} "
        f"{tuple(one.shape) if torch.is_tensor(one) else ''}")
    assert torch.allclose(one, path[0], atol=1e-6), (
        "with a single estimate there is no velocity yet: return that estimate")
    for t in range(2, len(path)):
        estimates = [c.clone() for c in path[:t]]
        before = [c.clone() for c in estimates]
        guess = call(estimates)
        assert len(estimates) == t and all(torch.equal(a, b) for a, b in zip(estimates, before)), (
            "predict must not modify the list of estimates (or the tensors in it)")
        assert torch.is_tensor(guess) and tuple(guess.shape) == (3,), "predict must return a (3,) tensor"
        assert not guess.requires_grad, "return a plain tensor (detach it): it becomes the next start"
        if torch.allclose(guess, path[t - 1], atol=1e-6):
            raise AssertionError("predict returns the last estimate: that is the tracker without "
                                 "prediction; add the last step, C[t-1] - C[t-2]")
        if torch.allclose(guess, path[t - 2], atol=1e-5) or torch.allclose(guess, 2 * path[t - 2] - path[t - 1], atol=1e-5):
            raise AssertionError("the prediction lies behind the last estimate: the camera keeps "
                                 "moving forwards, in the direction C[t-1] - C[t-2]")
        assert torch.allclose(guess, path[t], atol=1e-5), (
            f"the camera moves at constant velocity, by {_rounded(path[1] - path[0])} per frame: "
            f"after {_rounded(path[t - 1])} it comes to {_rounded(path[t])}, but predict returned "
            f"{_rounded(guess)} (from {t} estimates)")
    path = _circle(12)
    lag_error = predicted_error = 0.0
    for t in range(2, len(path)):
        guess = call([c.clone() for c in path[:t]])
        lag_error += (path[t - 1] - path[t]).norm().item()
        predicted_error += (guess - path[t]).norm().item()
    assert predicted_error < 0.1 * lag_error, (
        f"on a circle, the prediction should be far closer to the next camera than the last "
        f"estimate is (total distances {predicted_error:.4f} and {lag_error:.4f})")
    return True


def _loss_cases():
    """(per-frame losses, whether the last frame is lost, why) triples for check_lost."""
    steady = [100.0 + 5.0 * math.sin(i) for i in range(15)]
    return [
        ([100.0], False, "one loss: nothing to compare it with"),
        (steady, False, "the losses stay around 100"),
        (steady + [250.0], False, "250 is 2.5 times the median of the last 10, below 3 times"),
        (steady + [400.0], True, "400 is about 4 times the median of the last 10"),
        ([100.0, 400.0], True, "400 is 4 times the only earlier loss"),
        ([1000.0] * 12 + [100.0] * 10 + [400.0], True,
         "only the last 10 losses count: their median is 100, and 400 is 4 times that"),
        ([100.0] * 6 + [5000.0] * 4 + [400.0], True,
         "the median of the last 10 is 100 although four were 5000 (their mean, 2060, would hide "
         "the jump to 400)"),
        ([1e-3 * x for x in steady] + [0.4], True, "the same jump at a thousandth of the scale"),
        ([100.0, 200.0, 400.0], False,
         "the median of 100 and 200 is 150, the mean of the two middle values (torch.median "
         "returns the lower one), and 400 is less than 3 times 150"),
    ]


def check_lost(lost):
    """Exercise 5.2: ``lost(losses)`` takes the list of per-frame final losses so far and returns
    True when the last one is more than 3 times the median of the (up to) 10 losses before it,
    False when there are fewer than 2 losses."""
    for losses, expected, why in _loss_cases():
        answer = lost(list(losses))
        assert isinstance(answer, bool) or answer in (0, 1) or torch.is_tensor(answer), (
            f"lost must return a bool, got {type(answer).__name__}")
        assert bool(answer) == expected, (
            f"lost returned {bool(answer)} where it should return {expected}: {why} "
            f"(losses ending {[round(x, 4) for x in losses[-3:]]})")
    return True
