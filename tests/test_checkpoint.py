import pytest
import torch
from torch import nn

from hypersst.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip_restores_model_and_optimizer(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "ckpt.pt", model, optimizer, extra={"epoch": 3})

    clone = nn.Linear(4, 3)
    clone_optimizer = torch.optim.Adam(clone.parameters(), lr=0.5)
    extra = load_checkpoint(tmp_path / "ckpt.pt", clone, clone_optimizer)
    assert extra == {"epoch": 3}
    assert torch.equal(clone.weight, model.weight)
    assert clone_optimizer.param_groups[0]["lr"] == 0.1
    assert torch.equal(clone_optimizer.state[clone.weight]["exp_avg"], optimizer.state[model.weight]["exp_avg"])


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = nn.Linear(2, 2)
    path = save_checkpoint(tmp_path / "ckpt.pt", model)
    previous = path.read_bytes()

    def broken_save(obj, stream):
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, nn.Linear(2, 2))
    assert path.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"], "the temporary file must be removed"


def test_missing_checkpoint_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt' not found"):
        load_checkpoint(tmp_path / "missing.pt", nn.Linear(2, 2))


def test_checkpoint_without_optimizer_state_raises(tmp_path):
    model = nn.Linear(2, 2)
    save_checkpoint(tmp_path / "ckpt.pt", model)
    with pytest.raises(ValueError, match="contains no optimizer state"):
        load_checkpoint(tmp_path / "ckpt.pt", model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_rejected_scheduler_state_leaves_model_unchanged(tmp_path):
    from hypersst import SSTConfig, SSTLinear, SSTScheduler

    torch.manual_seed(0)
    model = nn.Sequential(SSTLinear(6, 5, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    scheduler = SSTScheduler(model, optimizer, SSTConfig(rank=2, sampling="sequential"))
    model(torch.randn(3, 6)).sum().backward()
    optimizer.step()
    scheduler.step()
    save_checkpoint(tmp_path / "ckpt.pt", model, optimizer, scheduler)

    torch.manual_seed(1)
    other = nn.Sequential(SSTLinear(6, 5, 2))
    before = {name: tensor.clone() for name, tensor in other.state_dict().items()}
    other_optimizer = torch.optim.Adam(other.parameters(), lr=0.5)
    other_scheduler = SSTScheduler(other, other_optimizer, SSTConfig(rank=2, sampling="top"))
    learning_rates = [group["lr"] for group in other_optimizer.param_groups]
    with pytest.raises(ValueError, match="sampling='sequential' there, 'top' here"):
        load_checkpoint(tmp_path / "ckpt.pt", other, other_optimizer, other_scheduler)
    for name, tensor in other.state_dict().items():
        assert torch.equal(tensor, before[name]), f"{name} changed although the checkpoint was rejected"
    assert [group["lr"] for group in other_optimizer.param_groups] == learning_rates
    assert other_scheduler.step_count == 0


def test_galore_checkpoint_needs_weights_only_false(tmp_path):
    from hypersst.lowrank import make_galore_optimizer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8))
    optimizer = make_galore_optimizer(model, 2, 1e-2, update_proj_gap=5)
    model(torch.randn(4, 8)).pow(2).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "galore.pt", model, optimizer)
    clone = nn.Sequential(nn.Linear(8, 8))
    clone_optimizer = make_galore_optimizer(clone, 2, 1e-2, update_proj_gap=5)
    with pytest.raises(ValueError, match="pass weights_only=False"):
        load_checkpoint(path, clone, clone_optimizer)
    load_checkpoint(path, clone, clone_optimizer, weights_only=False)
    assert torch.equal(clone[0].weight, model[0].weight)
