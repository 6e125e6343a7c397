"""Side-by-side table of bench_cuda_attention (decoflow) and attention_torch.py (PyTorch) JSON
results, with the ratios and the targets (forward >= 0.7x, backward >= 0.5x PyTorch's TFLOP/s).
Usage: report.py DECOFLOW_JSON TORCH_JSON [TORCH_JSON ...]  (the first torch file is the peer)"""
import json
import sys


def key(r):
    return (r["heads"], r["dim"], r["n"], bool(r["causal"]))


def main():
    ours = json.load(open(sys.argv[1]))
    peers = [json.load(open(p)) for p in sys.argv[2:]]
    peer = peers[0]
    theirs = {key(r): r for r in peer["rows"]}
    print(f"decoflow on {ours['device']}; PyTorch {peer.get('torch')} SDPA ({peer.get('backend')}) on {peer['device']}")
    print("| heads x dim | N | batch | mask | decoflow fwd TF/s | torch fwd TF/s | fwd ratio | decoflow bwd TF/s | torch bwd TF/s | bwd ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    misses = 0
    for r in ours["rows"]:
        t = theirs.get(key(r))
        if not t:
            continue
        fr, br = r["forward_tflops"] / t["forward_tflops"], r["backward_tflops"] / t["backward_tflops"]
        ok_f, ok_b = fr >= 0.7, br >= 0.5
        misses += (not ok_f) + (not ok_b)
        print(f"| {r['heads']} x {r['dim']} | {r['n']} | {r['batch']} | {'causal' if r['causal'] else 'full'} | "
              f"{r['forward_tflops']:.1f} | {t['forward_tflops']:.1f} | {fr:.2f}{'' if ok_f else ' (<0.7)'} | "
              f"{r['backward_tflops']:.1f} | {t['backward_tflops']:.1f} | {br:.2f}{'' if ok_b else ' (<0.5)'} |")
    for p in peers[1:]:
        print(f"(also measured: PyTorch SDPA {p.get('backend')}: see its JSON)")
    print(f"targets missed: {misses}")


if __name__ == "__main__":
    main()
