"""Compares stsyn's hand-written CNNs with PyTorch on the same parameters and batch.
Usage: STSYN_CROSS_CHECK_DIR=/tmp/xc cargo test --release -- --ignored dump_for_pytorch_cross_check
       python benches/torch_cross_check.py /tmp/xc
Loads each JSON dump (parameters in stsyn's flat layout = PyTorch's parameters() order), runs the
same network in PyTorch (float64 for the reference) and prints the largest differences."""
import json, sys, pathlib, torch, torch.nn as nn

def net(model):
    if model == "cifar10_cnn":
        return nn.Sequential(nn.Conv2d(3, 64, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(64, 64, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 384), nn.ReLU(), nn.Linear(384, 192),
                             nn.ReLU(), nn.Linear(192, 10))
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))

for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    d = json.loads(path.read_text())
    m = net(d["model"]).double()
    flat = torch.tensor(d["params"], dtype=torch.float64)
    assert flat.numel() == sum(p.numel() for p in m.parameters()), "parameter count"
    torch.nn.utils.vector_to_parameters(flat, m.parameters())
    x = torch.tensor(d["x"], dtype=torch.float64).reshape(-1, *d["input"])
    y = torch.tensor(d["labels"])
    logits = m(x)
    loss = nn.CrossEntropyLoss()(logits, y)
    loss.backward()
    grad = torch.nn.utils.parameters_to_vector([p.grad for p in m.parameters()])
    g = torch.tensor(d["grad"], dtype=torch.float64)
    print(f"{d['model']}: loss stsyn {d['loss']:.7f} torch {loss.item():.7f}; "
          f"max |logit diff| {(logits.detach().flatten() - torch.tensor(d['logits'], dtype=torch.float64)).abs().max():.2e}; "
          f"max |grad diff| {(grad - g).abs().max():.2e} (max |grad| {g.abs().max():.2e}); "
          f"relative L2 {((grad - g).norm() / g.norm()).item():.2e}")
