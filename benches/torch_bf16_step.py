"""One local SGD step of cifar10_cnn in PyTorch with bf16 autocast (the like-for-like peer of
`stsyn model models/cifar10_cnn.toml --bench --precision bf16`; ../shared/bench/torch_cnn_bench.py
times the f32 step). Same network, batch and random data as that script, and like it prints
the mean of --steps timed steps after 3 warm-up steps.
Usage: python benches/torch_bf16_step.py [--batch 100] [--threads 1] [--steps 20]"""
import argparse, time
import torch, torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=100); p.add_argument("--threads", type=int, default=1)
p.add_argument("--steps", type=int, default=20)
a = p.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 64, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(64, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Flatten(), nn.Linear(1600, 384), nn.ReLU(), nn.Linear(384, 192), nn.ReLU(), nn.Linear(192, 10))
opt = torch.optim.SGD(net.parameters(), lr=0.1); loss_fn = nn.CrossEntropyLoss()
x = torch.randn(a.batch, 3, 32, 32); y = torch.randint(0, 10, (a.batch,))

def step():
    opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(net(x), y)
    loss.backward(); opt.step()

for _ in range(3):
    step()
t = time.perf_counter()
for _ in range(a.steps):
    step()
dt = (time.perf_counter() - t) / a.steps
print(f"model=cifar batch={a.batch} threads={torch.get_num_threads()} autocast=bf16 step_ms={dt * 1e3:.2f}")
