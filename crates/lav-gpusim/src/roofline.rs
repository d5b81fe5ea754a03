//! The roofline model: attainable throughput is the lower of the compute peak and
//! what memory can feed at a given arithmetic intensity.

/// Attainable FLOP/s at `intensity` FLOP per byte, with `bandwidth` bytes/s and a
/// compute `peak` FLOP/s: min(peak, intensity × bandwidth).
pub fn attainable(intensity: f64, bandwidth: f64, peak: f64) -> f64 {
    (intensity * bandwidth).min(peak)
}

/// The intensity where the two roofs meet: below it a kernel is memory-bound.
pub fn ridge(peak: f64, bandwidth: f64) -> f64 {
    peak / bandwidth
}

/// Which roof limits a kernel of `intensity` on a machine whose ridge is `ridge`.
pub fn bound(intensity: f64, ridge: f64) -> &'static str {
    if intensity < ridge {
        "memory-bound"
    } else {
        "compute-bound"
    }
}

/// Arithmetic intensity of an `m × k` by `k × n` matmul reading A and B and writing C
/// once, with `width`-byte values: 2mkn / ((mk + kn + mn) · width).
pub fn matmul_intensity(m: usize, k: usize, n: usize, width: f64) -> f64 {
    let (m, k, n) = (m as f64, k as f64, n as f64);
    2.0 * m * k * n / ((m * k + k * n + m * n) * width)
}

/// Vector add: 1 FLOP per two reads and a write.
pub fn vector_add_intensity(width: f64) -> f64 {
    1.0 / (3.0 * width)
}

/// A decoder-only transformer's shapes: what [`forward_ops`] needs. The labs fill it
/// from the real model's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shapes {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
}

/// One operation of a forward step: its FLOPs and the bytes it moves to and from
/// memory, for every layer together (`per_layer` says whether it repeats per layer).
#[derive(Clone, Debug, PartialEq)]
pub struct OpCost {
    pub name: &'static str,
    pub flops: f64,
    pub bytes: f64,
    pub per_layer: bool,
}

impl OpCost {
    pub fn intensity(&self) -> f64 {
        self.flops / self.bytes
    }
}

/// Bytes per value: weights, activations and the KV cache.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Widths {
    pub weight: f64,
    pub activation: f64,
    pub kv: f64,
}

/// Every operation of one forward step that computes `tokens` new positions, each
/// attending over `context` positions (prefill: tokens = context = the prompt;
/// decode of a batch of b: tokens = b). A matmul of `t × k` by `k × n` does 2tkn FLOPs
/// and moves its weights once plus its input and output activations; attention reads
/// the cached K and V; elementwise ops read and write their activations.
pub fn forward_ops(s: &Shapes, tokens: usize, context: usize, w: Widths) -> Vec<OpCost> {
    let (t, ctx) = (tokens as f64, context as f64);
    let (h, hd) = (s.hidden as f64, s.head_dim as f64);
    let (q, kv) = (s.heads as f64 * hd, s.kv_heads as f64 * hd);
    let (f, v, l) = (s.ffn as f64, s.vocab as f64, s.layers as f64);
    let a = w.activation;
    let matmul = |name, k: f64, n: f64| OpCost {
        name,
        flops: 2.0 * t * k * n * l,
        bytes: (k * n * w.weight + t * k * a + t * n * a) * l,
        per_layer: true,
    };
    let elementwise = |name, flops_per: f64, reads: f64, n: f64, extra: f64| OpCost {
        name,
        flops: flops_per * t * n * l,
        bytes: ((reads + 1.0) * t * n * a + extra) * l,
        per_layer: true,
    };
    let heads = s.heads as f64;
    vec![
        elementwise("attention RMSNorm", 4.0, 1.0, h, h * w.weight),
        matmul("Q projection", h, q),
        OpCost {
            // K and V projections also write the new positions into the cache.
            name: "K and V projections",
            flops: 2.0 * t * h * 2.0 * kv * l,
            bytes: (h * 2.0 * kv * w.weight + t * h * a + t * 2.0 * kv * w.kv) * l,
            per_layer: true,
        },
        elementwise("RoPE", 6.0, 1.0, q + kv, 0.0),
        OpCost {
            name: "scores QKᵀ",
            flops: 2.0 * t * ctx * hd * heads * l,
            bytes: (t * q * a + ctx * kv * w.kv + t * ctx * heads * 4.0) * l,
            per_layer: true,
        },
        OpCost {
            name: "softmax",
            flops: 5.0 * t * ctx * heads * l,
            bytes: 2.0 * t * ctx * heads * 4.0 * l,
            per_layer: true,
        },
        OpCost {
            name: "weighted sum PV",
            flops: 2.0 * t * ctx * hd * heads * l,
            bytes: (t * ctx * heads * 4.0 + ctx * kv * w.kv + t * q * a) * l,
            per_layer: true,
        },
        matmul("output projection", q, h),
        elementwise("residual add", 1.0, 2.0, h, 0.0),
        elementwise("MLP RMSNorm", 4.0, 1.0, h, h * w.weight),
        matmul("gate and up projections", h, 2.0 * f),
        elementwise("SiLU × up", 5.0, 2.0, f, 0.0),
        matmul("down projection", f, h),
        elementwise("residual add (MLP)", 1.0, 2.0, h, 0.0),
        OpCost {
            name: "LM head",
            flops: 2.0 * t * h * v,
            bytes: h * v * w.weight + t * h * a + t * v * 4.0,
            per_layer: false,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roofs_meet_at_the_ridge() {
        // H100 SXM, published: 989 TFLOP/s BF16 dense, 3.35 TB/s.
        let (peak, bw) = (989e12, 3.35e12);
        let r = ridge(peak, bw);
        assert!((r - 295.2).abs() < 0.1, "{r}");
        assert_eq!(attainable(r * 2.0, bw, peak), peak);
        assert!((attainable(1.0, bw, peak) - bw).abs() < 1.0);
        assert_eq!(bound(1.0, r), "memory-bound");
        assert_eq!(bound(1000.0, r), "compute-bound");
    }

    fn smollm2() -> Shapes {
        // SmolLM2-135M's published configuration.
        Shapes {
            hidden: 576,
            layers: 30,
            heads: 9,
            kv_heads: 3,
            head_dim: 64,
            ffn: 1536,
            vocab: 49152,
        }
    }

    const BF16: Widths = Widths {
        weight: 2.0,
        activation: 2.0,
        kv: 2.0,
    };

    #[test]
    fn a_forward_step_does_two_flops_per_parameter_per_token_plus_attention() {
        let s = smollm2();
        let ops = forward_ops(&s, 1, 1, BF16);
        let matmul_flops: f64 = ops
            .iter()
            .filter(|o| o.name.contains("projection") || o.name == "LM head")
            .map(|o| o.flops)
            .sum();
        // Weights of the matmuls: per layer q, k, v, o, gate, up, down, plus the head.
        let per_layer = 576 * (576 + 2 * 192 + 576) + 3 * 576 * 1536;
        let params = 30 * per_layer + 576 * 49152;
        assert_eq!(matmul_flops, 2.0 * params as f64);
        // Their bytes at batch 1 are the weights, to within the activations.
        let weight_bytes: f64 = 2.0 * params as f64;
        let bytes: f64 = ops.iter().map(|o| o.bytes).sum();
        assert!(
            bytes > weight_bytes && bytes < 1.01 * weight_bytes,
            "{bytes} {weight_bytes}"
        );
    }

    #[test]
    fn decode_gemv_intensity_is_about_the_batch() {
        // Curriculum: decode GEMV at batch b has AI ≈ b FLOP/byte with 16-bit weights.
        let s = smollm2();
        for b in [1usize, 4, 16] {
            let ops = forward_ops(&s, b, 512, BF16);
            let down = ops.iter().find(|o| o.name == "down projection").unwrap();
            let ai = down.intensity();
            assert!((ai / b as f64 - 1.0).abs() < 0.1, "batch {b}: {ai}");
        }
        // Prefill of 512 tokens is compute-heavy: its matmuls sit far to the right.
        let pre = forward_ops(&s, 512, 512, BF16);
        assert!(
            pre.iter()
                .find(|o| o.name == "Q projection")
                .unwrap()
                .intensity()
                > 100.0
        );
        // Elementwise ops stay below 1 FLOP/byte at any batch.
        assert!(
            pre.iter()
                .find(|o| o.name == "residual add")
                .unwrap()
                .intensity()
                < 1.0
        );
    }

    #[test]
    fn the_worked_examples() {
        // A 1024² FP32 matmul: 2·1024³ FLOPs over 3·1024²·4 B, AI ≈ 170.
        let n = 1024.0f64;
        let ai = 2.0 * n.powi(3) / (3.0 * n * n * 4.0);
        assert!((ai - 170.0).abs() < 1.0, "{ai}");
        assert!((matmul_intensity(1024, 1024, 1024, 4.0) - ai).abs() < 1e-9);
        // Vector add in FP32: 1 FLOP per 12 B.
        assert!((vector_add_intensity(4.0) - 1.0 / 12.0).abs() < 1e-12);
    }
}
