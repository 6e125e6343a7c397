#!/usr/bin/env python3
"""PyTorch reference of decoflow's DFM transformer (native/model/dit.h), written independently of
the C++ code from the DiT paper's description, with the same parameter names as decoflow.

  dit_reference.py fixtures OUTDIR       writes, per small config, OUTDIR/<name>/{params,batch,expected}
                                         .safetensors and meta.json (inputs, outputs, loss, every
                                         parameter gradient, the losses of 10 AdamW steps)
  dit_reference.py forward CKPT BATCH OUT   loads a decoflow checkpoint and writes its outputs and loss

Runs on Debian's python3-torch (1.13); needs nothing else (safetensors is read and written here).
"""
import json
import math
import struct
import sys
from pathlib import Path

import torch
import torch.nn as nn

# ---------------------------------------------------------------------------------------------
# safetensors (F32 and I32 only)

DTYPES = {"F32": torch.float32, "I32": torch.int32}
USE_SDPA = False


def write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        dtype = {torch.float32: "F32", torch.int32: "I32"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        buf = bytearray(raw[8 + n + b:8 + n + end])
        out[name] = torch.frombuffer(buf, dtype=DTYPES[e["dtype"]]).reshape(e["shape"]).clone()
    return out, meta


# ---------------------------------------------------------------------------------------------
# The model


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def sincos_2d(dim, gh, gw):
    """[gh*gw, dim]: first half encodes the column, second half the row; each [sin..., cos...]."""
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    rows = torch.arange(gh, dtype=torch.float64).repeat_interleave(gw)  # token n = i * gw + j
    cols = torch.arange(gw, dtype=torch.float64).repeat(gh)
    def enc(pos):
        a = pos[:, None] * omega[None]
        return torch.cat([a.sin(), a.cos()], dim=1)
    return torch.cat([enc(cols), enc(rows)], dim=1).float()


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden, freq_dim, time_scale):
        super().__init__()
        self.freq_dim, self.time_scale = freq_dim, time_scale
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def features(self, t):
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64, device=t.device) / half)
        args = t.double()[:, None] * self.time_scale * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
        if self.freq_dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
        return emb.float()

    def forward(self, t):
        return self.mlp(self.features(t))


class TableEmbedder(nn.Module):
    def __init__(self, rows, hidden):
        super().__init__()
        self.embedding_table = nn.Embedding(rows, hidden)

    def forward(self, idx):
        return self.embedding_table(idx)


class PatchEmbed(nn.Module):
    def __init__(self, channels, hidden, patch):
        super().__init__()
        self.proj = nn.Conv2d(channels, hidden, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, N, D], token n = i * gw + j


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, D = x.shape
        hd = D // self.heads
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        if USE_SDPA:  # PyTorch 2.x's fused attention (the benchmark peer); same maths
            o = nn.functional.scaled_dot_product_attention(q, k, v)
        else:
            o = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(hd), dim=-1) @ v
        return self.proj(o.transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, mlp_hidden)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x, c):
        sh1, sc1, g1, sh2, sc2, g2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh1, sc1))
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh2, sc2))


class FinalLayer(nn.Module):
    def __init__(self, dim, patch, channels):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch * patch * channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DFMDiT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        S, C, D = cfg["stages"], cfg["channels"], cfg["hidden"]
        self.S, self.C = S, C
        self.patch = cfg["patchSizes"]
        self.sizes = [(cfg["height"] >> (S - 1 - s), cfg["width"] >> (S - 1 - s)) for s in range(S)]
        self.gh, self.gw = self.sizes[0][0] // self.patch[0], self.sizes[0][1] // self.patch[0]
        self.x_embedders = nn.ModuleList([PatchEmbed(C, D, p) for p in self.patch])
        self.t_embedders = nn.ModuleList(
            [TimestepEmbedder(D, cfg.get("freqDim", 256), cfg.get("timeScale", 1000.0)) for _ in range(S)])
        self.num_classes = cfg.get("numClasses", 0)
        if self.num_classes > 0:
            self.y_embedder = TableEmbedder(self.num_classes + 1, D)  # last row: the null class
        if cfg.get("stageEmbedding", False):
            self.s_embedder = TableEmbedder(S, D)
        pos = sincos_2d(D, self.gh, self.gw) if cfg.get("posEmbedding", True) else torch.zeros(self.gh * self.gw, D)
        self.register_buffer("pos_embed", pos[None], persistent=False)
        mlp_hidden = int(D * cfg.get("mlpRatio", 4.0))
        self.blocks = nn.ModuleList([Block(D, cfg["heads"], mlp_hidden) for _ in range(cfg["depth"])])
        self.final_layers = nn.ModuleList([FinalLayer(D, p, C) for p in self.patch])
        self.predictions = cfg.get("stagePredictions", ["v"] * S)
        self.clean_min_gap = cfg.get("cleanMinGap", 0.05)

    def forward(self, xs, t, mask, y=None):
        x = self.pos_embed.expand(xs[0].shape[0], -1, -1)
        for s in range(self.S):
            x = x + mask[:, s, None, None] * self.x_embedders[s](xs[s])
        c = sum(self.t_embedders[s](t[:, s]) for s in range(self.S))
        if self.num_classes > 0:
            c = c + self.y_embedder(y.long())
        if hasattr(self, "s_embedder"):
            active = ((mask != 0).long() * torch.arange(self.S, device=mask.device)).max(dim=1).values  # the last unmasked stage
            c = c + self.s_embedder(active)
        for block in self.blocks:
            x = block(x, c)
        outs = []
        for s in range(self.S):
            p, (H, W) = self.patch[s], self.sizes[s]
            o = self.final_layers[s](x, c).reshape(-1, self.gh, self.gw, p, p, self.C)
            o = torch.einsum("bhwpqc->bchpwq", o).reshape(-1, self.C, H, W)
            if self.predictions[s] == "x":  # the clean level X^, returned as the velocity (X^ - x_t) / (1 - t)
                o = (o - xs[s]) / torch.clamp(1 - t[:, s], min=self.clean_min_gap)[:, None, None, None]
            outs.append(o)
        return outs


def dfm_loss(outs, targets, mask, weights=None):
    """Sum over stages of the per-sample mean squared error (times the stage's weight, default 1),
    masked stages excluded, batch-averaged."""
    B = outs[0].shape[0]
    total = 0.0
    for s, (g, v) in enumerate(zip(outs, targets)):
        per_sample = ((g - v) ** 2).flatten(1).sum(dim=1)
        w = 1.0 if weights is None else float(weights[s])
        total = total + w * (per_sample * mask[:, s]).sum() / (B * g[0].numel())
    return total


# ---------------------------------------------------------------------------------------------
# Fixtures

CONFIGS = {
    # Plain flow matching: one stage, unconditional.
    "s1_uncond": dict(config=dict(stages=1, channels=3, height=8, width=8, patchSizes=[2], hidden=32, depth=2, heads=4,
                                  mlpRatio=4.0, numClasses=0, stageEmbedding=False, posEmbedding=True, freqDim=32,
                                  timeScale=1000.0),
                      batch=3, masks=[[1], [1], [1]]),
    # Two stages, classes (null class included), stage embedding, the fine stage masked for two samples.
    "s2_classes_masked": dict(config=dict(stages=2, channels=2, height=16, width=16, patchSizes=[2, 4], hidden=48,
                                          depth=2, heads=3, mlpRatio=2.0, numClasses=5, stageEmbedding=True,
                                          posEmbedding=True, freqDim=24, timeScale=1000.0),
                              batch=4, masks=[[1, 1], [1, 0], [1, 1], [1, 0]], labels=[0, 5, 3, 5]),
    # Three stages on a non-square image, no position embedding, mixed masks.
    "s3_nonsquare": dict(config=dict(stages=3, channels=1, height=16, width=8, patchSizes=[1, 2, 4], hidden=32, depth=3,
                                     heads=2, mlpRatio=4.0, numClasses=3, stageEmbedding=False, posEmbedding=False,
                                     freqDim=16, timeScale=1.0),
                         batch=3, masks=[[1, 0, 0], [1, 1, 0], [1, 1, 1]], labels=[2, 0, 3]),
    # Two stages, the fine one predicting its clean level (the model returns its velocity).
    "s2_clean_fine": dict(config=dict(stages=2, channels=3, height=16, width=16, patchSizes=[2, 4], hidden=32, depth=2,
                                      heads=2, mlpRatio=4.0, numClasses=4, stageEmbedding=True, posEmbedding=True,
                                      freqDim=16, timeScale=1000.0, stagePredictions=["v", "x"]),
                          batch=3, masks=[[1, 1], [1, 0], [1, 1]], labels=[1, 4, 2]),
    # The same with a large clamp of 1 - t (two of the three active fine times are clamped, one is not).
    "s2_clean_fine_gap": dict(config=dict(stages=2, channels=1, height=16, width=16, patchSizes=[2, 4], hidden=32,
                                          depth=2, heads=2, mlpRatio=4.0, numClasses=0, stageEmbedding=True,
                                          posEmbedding=True, freqDim=16, timeScale=1000.0, stagePredictions=["v", "x"],
                                          cleanMinGap=0.6),
                              batch=4, masks=[[1, 1], [1, 1], [1, 0], [1, 1]]),
}

OPTIM = dict(lr=2e-3, beta1=0.9, beta2=0.99, eps=1e-8, weightDecay=0.01, warmupSteps=3, gradClip=0.5, emaDecay=0.3, emaWarmup=True)
TRAIN_STEPS = 10


def randomize(model, gen):
    """Every parameter random and non-zero (DiT's zero-init would make most gradients vanish)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and "embedding_table" not in name:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (0.7 / math.sqrt(fan_in)))
            elif "embedding_table" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def make_batch(model, spec, gen):
    cfg, B = model.cfg, spec["batch"]
    xs = [torch.randn(B, model.C, H, W, generator=gen) for (H, W) in model.sizes]
    vs = [torch.randn(B, model.C, H, W, generator=gen) for (H, W) in model.sizes]
    t = torch.rand(B, model.S, generator=gen)
    mask = torch.tensor(spec["masks"], dtype=torch.float32)
    labels = torch.tensor(spec.get("labels", [0] * B), dtype=torch.int32)
    return xs, vs, t, mask, labels


def batch_tensors(xs, vs, t, mask, labels):
    d = {"t": t, "mask": mask, "labels": labels}
    for s in range(len(xs)):
        d[f"x.{s}"] = xs[s]
        d[f"v.{s}"] = vs[s]
    return d


def write_fixtures(outdir):
    outdir = Path(outdir)
    for i, (name, spec) in enumerate(CONFIGS.items()):
        gen = torch.Generator().manual_seed(1234 + i)
        model = DFMDiT(spec["config"])
        randomize(model, gen)
        xs, vs, t, mask, labels = make_batch(model, spec, gen)
        d = outdir / name
        d.mkdir(parents=True, exist_ok=True)
        meta = {"config": json.dumps(spec["config"])}
        write_safetensors(d / "params.safetensors", model.state_dict(), meta)
        write_safetensors(d / "batch.safetensors", batch_tensors(xs, vs, t, mask, labels))

        outs = model(xs, t, mask, labels)
        loss = dfm_loss(outs, vs, mask)
        model.zero_grad()
        loss.backward()
        expected = {f"out.{s}": o for s, o in enumerate(outs)}
        for pname, p in model.named_parameters():
            expected[f"grad.{pname}"] = p.grad
        write_safetensors(d / "expected.safetensors", expected)

        # 10 AdamW steps on the same batch: warm-up, clipping, decoupled weight decay, EMA.
        o = OPTIM
        params = list(model.parameters())
        opt = torch.optim.AdamW(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                                weight_decay=o["weightDecay"], foreach=False)
        ema = [p.detach().clone() for p in params]
        losses, norms = [], []
        for step in range(1, TRAIN_STEPS + 1):
            opt.zero_grad()
            l = dfm_loss(model(xs, t, mask, labels), vs, mask)
            l.backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, o["gradClip"])))
            for g in opt.param_groups:
                g["lr"] = o["lr"] * min(1.0, step / o["warmupSteps"])
            opt.step()
            # EMA warm-up: step n decays by min(emaDecay, (1 + n) / (10 + n)); with emaDecay 0.3 the
            # first two steps take the warm-up term and the rest the cap.
            decay = min(o["emaDecay"], (1 + step) / (10 + step)) if o["emaWarmup"] else o["emaDecay"]
            with torch.no_grad():
                for e, p in zip(ema, params):
                    e.mul_(decay).add_(p, alpha=1 - decay)
            losses.append(float(l))
        trained = {n: p for n, p in model.state_dict().items()}
        trained.update({f"ema.{n}": e for (n, _), e in zip(model.named_parameters(), ema)})
        write_safetensors(d / "trained.safetensors", trained)
        (d / "meta.json").write_text(json.dumps({
            "config": spec["config"], "loss": float(loss), "optimizer": OPTIM, "trainLosses": losses,
            "gradNorms": norms, "stages": model.S}))
    print(json.dumps(sorted(CONFIGS)))


def forward_checkpoint(ckpt, batch, out):
    tensors, meta = read_safetensors(ckpt)
    cfg = json.loads(meta["config"])
    model = DFMDiT(cfg)
    state = {k: v for k, v in tensors.items() if k in model.state_dict()}
    model.load_state_dict(state, strict=True)
    b, _ = read_safetensors(batch)
    S = cfg["stages"]
    xs = [b[f"x.{s}"] for s in range(S)]
    vs = [b[f"v.{s}"] for s in range(S)]
    with torch.no_grad():
        outs = model(xs, b["t"], b["mask"], b["labels"])
        loss = dfm_loss(outs, vs, b["mask"])
    res = {f"out.{s}": o for s, o in enumerate(outs)}
    res["loss"] = torch.tensor([float(loss)])
    write_safetensors(out, res)


if __name__ == "__main__":
    torch.set_num_threads(1)  # fixtures must not depend on the machine
    if sys.argv[1] == "fixtures":
        write_fixtures(sys.argv[2])
    elif sys.argv[1] == "forward":
        forward_checkpoint(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
