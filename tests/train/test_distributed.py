"""Gradient averaging: flattened buckets per dtype and device, one all-reduce each, copied back."""

import pytest
import torch

from mlff.train import distributed


def test_gradients_are_reduced_in_buckets_and_copied_back(monkeypatch):
    shapes = [(10, 4), (7,), (3, 3, 2), (100,), (5,)]
    params = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64 if k == 2 else torch.float32))
              for k, s in enumerate(shapes)]
    generator = torch.Generator().manual_seed(0)
    for p in params[:-1]:  # the last one gets no gradient
        p.grad = torch.randn(p.shape, generator=generator, dtype=p.dtype)
    params[0].grad = params[0].grad.t().contiguous().t()  # not contiguous
    before = [p.grad.clone() for p in params[:-1]]
    reduced = []

    def all_reduce(tensor, op):  # the other rank's gradients are all ones
        reduced.append((tensor.dtype, tensor.numel()))
        tensor.add_(1.0)

    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    distributed.average_gradients(params, world=2, bucket_bytes=4 * 50)  # room for 50 float32 values
    # float32: [10x4, 7] = 47 values fit, then 100 alone (over the limit); float64: 18 on its own
    assert reduced == [(torch.float32, 47), (torch.float32, 100), (torch.float64, 18)]
    for p, g in zip(params, before):
        torch.testing.assert_close(p.grad, (g + 1) / 2, rtol=0, atol=0)
    assert params[-1].grad is None


def test_one_process_does_not_communicate(monkeypatch):
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda *a, **k: pytest.fail("no all-reduce expected"))
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    distributed.average_gradients([p], world=1)
    assert p.grad.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("rank", [0, 1])
def test_computed_once_runs_on_rank_zero_and_every_rank_gets_its_result_or_its_error(monkeypatch, rank):
    sent = {}

    def broadcast(box, src):  # rank 0's object reaches every rank
        assert src == 0
        if rank == 0:
            sent["box"] = list(box)
        else:
            box[0] = sent["box"][0]

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "broadcast_object_list", broadcast)
    calls = []
    for outcome in ("value", "error"):
        def compute():
            calls.append(rank)
            if outcome == "error":
                raise ValueError("no E0 for Pt")
            return {"e0": 1.0}

        if rank == 1:  # what rank 0 sent
            sent["box"] = [(True, {"e0": 1.0})] if outcome == "value" else [(False, ValueError("no E0 for Pt"))]
        monkeypatch.setattr(torch.distributed, "get_rank", lambda: rank)
        if outcome == "value":
            assert distributed.computed_once(compute) == {"e0": 1.0}
        else:
            with pytest.raises(ValueError, match="no E0 for Pt"):
                distributed.computed_once(compute)
    assert calls == ([0, 0] if rank == 0 else [])  # only rank 0 computes
