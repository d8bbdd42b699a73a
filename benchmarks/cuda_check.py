"""CUDA smoke check (run on a GPU machine): every model trains and embeds on CUDA, and the
StRA module reproduces the authors' golden train-mode output on the GPU too. Run
``pytest tests/test_models_layers.py`` there as well for the eval-mode vectors on CUDA.

    python -m benchmarks.cuda_check [--golden ../shared/fixtures/stra_module_golden.pt]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch


def check_golden_train_mode(path: str, device: torch.device) -> float:
    """Train-mode output (batch statistics: independent of the fixture's saved running stats).

    The eval-mode outputs are checked on CUDA by ``tests/test_models_layers.py::test_golden_on_cuda``.
    """
    from reid_stra.models.layers.stra import StRA

    data = torch.load(path, weights_only=True, map_location="cpu")
    module = StRA(512, 512, modes=8, kernel_size=3, reduction=4)
    module.load_state_dict(data["state_dict"])
    module.to(device).train()
    with torch.no_grad():
        return (module(data["x"].to(device)).cpu() - data["y_train"]).abs().max().item()


def check_models(device: torch.device) -> list[str]:
    import reid_stra

    failures = []
    for name in reid_stra.list_models():
        try:
            model = reid_stra.build_model(name, num_classes=10).to(device)
            x = torch.randn(4, 3, 256, 128, device=device)
            model.train()
            with torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda"):
                out = model(x)
                loss = out["logits"].float().logsumexp(1).mean() + out["diversity"].float()
            loss.backward()
            model.eval()
            with torch.no_grad():
                emb = model(torch.randn(3, 3, 224, 96, device=device))
            assert emb.shape == (3, model.pretrained_cfg.embedding_dim), emb.shape
            assert torch.isfinite(emb).all()
            print(f"ok   {name:24s} emb {tuple(emb.shape)}", flush=True)
        except Exception as exc:  # noqa: BLE001 - report every model
            failures.append(name)
            print(f"FAIL {name:24s} {type(exc).__name__}: {exc}", flush=True)
    return failures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--golden", default="../shared/fixtures/stra_module_golden.pt")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device: {name}, torch {torch.__version__}")
    start = time.time()
    error = check_golden_train_mode(args.golden, device)
    verdict = "ok" if error <= 1e-4 else "FAIL"
    print(f"golden train-mode output, max abs error on {device}: {error:.2e} ({verdict})")
    failures = check_models(device)
    print(f"{len(failures)} model(s) failed; {time.time() - start:.1f}s")
    return 1 if failures or error > 1e-4 else 0


if __name__ == "__main__":
    sys.exit(main())
