// Attention on tensors (attention.h), compiled once: checks the operands and runs on their device,
// the CPU level in use (cpu_level.h) or the CUDA backend's kernels.
#include "../attention.h"

#include <cmath>
#include <string>

#include "../../core/backend.h"
#include "../../core/error.h"
#include "../ops.h"

namespace df {

namespace {

// The operands live together: f32 on the CPU, or f16/bf16 on one CUDA device (the flash kernels of
// cuda/attention.cu). `like` is q, whose device and dtype the others must share.
void expect_on_device_of_q(const Tensor& t, const Tensor& q, const std::string& name) {
  expect_defined(t, name.c_str());
  if (t.device() != q.device())
    fail(Code::Device, name + ": expected a tensor on " + q.device().name() + " (the device of q), got one on " +
                           t.device().name());
}

void expect_operand(const Tensor& t, const Tensor& like, const char* fn, const char* arg) {
  std::string name = std::string(fn) + ": " + arg;
  expect_on_device_of_q(t, like, name);
  const Device d = like.device();
  if (d.is_cpu()) {
    expect_dtype(t, DType::F32, name.c_str());
  } else if (&t == &like) {
    if (t.dtype() != DType::F16 && t.dtype() != DType::BF16)
      fail(Code::DType, name + ": expected f16 or bf16 on " + d.name() + " (the CUDA kernels), got " +
                            dtype_name(t.dtype()));
  } else {
    expect_dtype(t, like.dtype(), (name + " (the dtype of q)").c_str());
  }
}

void expect_shape(const Tensor& t, const Shape& want, const char* fn, const char* arg, const char* what) {
  if (t.shape() != want)
    fail(Code::Shape, std::string(fn) + ": " + arg + ": expected shape " + shape_str(want) + " (" + what + "), got " +
                          shape_str(t.shape()));
}

AttentionShape check_qkv(const Tensor& q, const Tensor& k, const Tensor& v, float scale, const char* fn) {
  expect_operand(q, q, fn, "q");
  expect_operand(k, q, fn, "k");
  expect_operand(v, q, fn, "v");
  std::string qn = std::string(fn) + ": q";
  expect_rank(q, 4, qn.c_str());
  const Shape& qs = q.shape();
  if (qs[3] > kMaxAttentionDim)
    fail(Code::Shape, qn + ": head dim (last) must be at most " + std::to_string(kMaxAttentionDim) + ", got " +
                          shape_str(qs));
  if (!q.device().is_cpu() && qs[3] != 32 && qs[3] != 64 && qs[3] != 128)
    fail(Code::Shape, qn + ": head dim (last) on " + q.device().name() + " must be 32, 64 or 128, got " + shape_str(qs));
  std::string kn = std::string(fn) + ": k";
  expect_rank(k, 4, kn.c_str());
  const Shape& ks = k.shape();
  if (ks[0] != qs[0] || ks[1] != qs[1] || ks[3] != qs[3])
    fail(Code::Shape, kn + ": expected [" + std::to_string(qs[0]) + ", " + std::to_string(qs[1]) + ", nk, " +
                          std::to_string(qs[3]) + "] (batch, heads and head dim of q " + shape_str(qs) + "), got " +
                          shape_str(ks));
  expect_shape(v, ks, fn, "v", "the shape of k");
  if (!std::isfinite(scale))
    fail(Code::NonFinite, std::string(fn) + ": scale: expected a finite number, got " + std::to_string(scale));
  return AttentionShape{qs[0], qs[1], qs[2], ks[2], qs[3]};
}

}  // namespace

AttentionOutput attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, bool causal) {
  AttentionShape s = check_qkv(q, k, v, scale, "attention");
  const Device d = q.device();
  AttentionOutput out{Tensor(q.shape(), q.dtype(), d), Tensor({s.batch, s.heads, s.nq}, DType::F32, d)};
  if (d.is_cpu()) {
    cpu_ops().attention_forward(q.data<float>(), k.data<float>(), v.data<float>(), out.o.data<float>(),
                                out.lse.data<float>(), s, scale, causal);
  } else {
    const DfCudaAttentionShape cs{s.batch, s.heads, s.nq, s.nk, s.dim};
    CudaBackend& b = cuda_backend();
    b.check(b.api().attention_forward(d.index, int(q.dtype()), q.raw(), k.raw(), v.raw(), out.o.raw(),
                                      out.lse.data<float>(), &cs, scale, causal),
            "attention");
  }
  return out;
}

AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                                  const Tensor& lse, const Tensor& d_o, float scale, bool causal) {
  const char* fn = "attentionBackward";
  AttentionShape s = check_qkv(q, k, v, scale, fn);
  expect_operand(o, q, fn, "o");
  expect_operand(d_o, q, fn, "dO");
  expect_on_device_of_q(lse, q, "attentionBackward: lse");
  expect_dtype(lse, DType::F32, "attentionBackward: lse");  // f32 on every device
  expect_shape(o, q.shape(), fn, "o", "the shape of q");
  expect_shape(d_o, q.shape(), fn, "dO", "the shape of q");
  expect_shape(lse, {s.batch, s.heads, s.nq}, fn, "lse", "[batch, heads, nq] of q");
  const Device d = q.device();
  AttentionGrads g{Tensor(q.shape(), q.dtype(), d), Tensor(k.shape(), q.dtype(), d), Tensor(v.shape(), q.dtype(), d)};
  if (d.is_cpu()) {
    cpu_ops().attention_backward(q.data<float>(), k.data<float>(), v.data<float>(), o.data<float>(),
                                 lse.data<float>(), d_o.data<float>(), g.dq.data<float>(), g.dk.data<float>(),
                                 g.dv.data<float>(), s, scale, causal);
  } else {
    const DfCudaAttentionShape cs{s.batch, s.heads, s.nq, s.nk, s.dim};
    CudaBackend& b = cuda_backend();
    b.check(b.api().attention_backward(d.index, int(q.dtype()), q.raw(), k.raw(), v.raw(), o.raw(), lse.data<float>(),
                                       d_o.raw(), g.dq.raw(), g.dk.raw(), g.dv.raw(), &cs, scale, causal),
            "attentionBackward");
  }
  return g;
}

}  // namespace df
