//! Operator fusion, counted: a chain of operations on an activation tensor run once
//! as separate kernels (each reads its input from HBM and writes its output back) and
//! once fused (elementwise runs kept in registers; a reduction is a barrier that ends
//! a fused kernel, because every element must be seen before its result exists).
//! Both runs compute the values and count every tensor read and write; tests check
//! the outputs are equal and the counts against the curriculum's.

/// One operation of a chain over a `rows × cols` tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// x · W for a fixed `cols × cols` weight (the chain's producer).
    Matmul,
    /// x + bias[col].
    Bias,
    Relu,
    /// GELU (tanh form).
    Gelu,
    /// x · s.
    Scale(f32),
    /// Row softmax: a reduction (max and sum over the row), so a barrier.
    Softmax,
}

impl Op {
    pub fn name(&self) -> String {
        match self {
            Op::Matmul => "matmul".into(),
            Op::Bias => "bias".into(),
            Op::Relu => "ReLU".into(),
            Op::Gelu => "GELU".into(),
            Op::Scale(s) => format!("×{s}"),
            Op::Softmax => "softmax".into(),
        }
    }

    /// Whether the op needs a whole row (or more) before any output: it cannot be
    /// fused into the elementwise run before it.
    pub fn is_barrier(&self) -> bool {
        matches!(self, Op::Matmul | Op::Softmax)
    }
}

/// HBM traffic of the activation tensor, in whole-tensor reads and writes (the
/// weights and bias are read the same in both runs and counted apart).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traffic {
    pub reads: usize,
    pub writes: usize,
    pub kernels: usize,
    /// Elements moved (reads + writes) of the activation tensor.
    pub elements: usize,
}

impl Traffic {
    pub fn accesses(&self) -> usize {
        self.reads + self.writes
    }
}

/// The chain's fixed operands, made deterministically from a seed.
pub struct Operands {
    pub cols: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Operands {
    pub fn new(cols: usize) -> Operands {
        let v = |i: usize, k: f32| ((i as f32 * k).sin() * 0.2).clamp(-1.0, 1.0);
        Operands {
            cols,
            weight: (0..cols * cols).map(|i| v(i, 0.618)).collect(),
            bias: (0..cols).map(|i| v(i, 1.7)).collect(),
        }
    }
}

fn elementwise(op: Op, x: f32, col: usize, o: &Operands) -> f32 {
    match op {
        Op::Bias => x + o.bias[col],
        Op::Relu => x.max(0.0),
        Op::Gelu => {
            let c = (2.0 / std::f32::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
        }
        Op::Scale(s) => x * s,
        Op::Matmul | Op::Softmax => unreachable!("not elementwise"),
    }
}

fn row_op(op: Op, row: &[f32], o: &Operands) -> Vec<f32> {
    let n = o.cols;
    match op {
        Op::Matmul => (0..n)
            .map(|j| (0..n).map(|k| row[k] * o.weight[k * n + j]).sum())
            .collect(),
        Op::Softmax => {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = row.iter().map(|x| (x - m).exp()).collect();
            let s: f32 = e.iter().sum();
            e.iter().map(|x| x / s).collect()
        }
        _ => unreachable!("elementwise"),
    }
}

/// Each op its own kernel: read the tensor from HBM, write the result back.
pub fn unfused(x: &[f32], chain: &[Op], o: &Operands) -> (Vec<f32>, Traffic) {
    let n = o.cols;
    let mut hbm = x.to_vec();
    let mut t = Traffic::default();
    for &op in chain {
        let input = hbm.clone();
        t.reads += 1;
        t.elements += input.len();
        let out: Vec<f32> = if op.is_barrier() {
            input.chunks(n).flat_map(|r| row_op(op, r, o)).collect()
        } else {
            input
                .iter()
                .enumerate()
                .map(|(i, &v)| elementwise(op, v, i % n, o))
                .collect()
        };
        t.writes += 1;
        t.elements += out.len();
        t.kernels += 1;
        hbm = out;
    }
    (hbm, t)
}

/// The chain cut into fused kernels: a barrier op starts a new kernel, and the
/// elementwise ops after it ride along in its epilogue.
pub fn groups(chain: &[Op]) -> Vec<Vec<Op>> {
    let mut g: Vec<Vec<Op>> = Vec::new();
    for &op in chain {
        match g.last_mut() {
            Some(last) if !op.is_barrier() => last.push(op),
            _ => g.push(vec![op]),
        }
    }
    g
}

/// Fused: each group reads its input once, keeps every intermediate in registers, and
/// writes once.
pub fn fused(x: &[f32], chain: &[Op], o: &Operands) -> (Vec<f32>, Traffic) {
    let n = o.cols;
    let mut hbm = x.to_vec();
    let mut t = Traffic::default();
    for group in groups(chain) {
        t.reads += 1;
        t.elements += hbm.len();
        let mut out = Vec::with_capacity(hbm.len());
        for row in hbm.chunks(n) {
            // One row at a time stands in for one block's registers and shared memory.
            let mut r: Vec<f32> = row.to_vec();
            for &op in &group {
                r = if op.is_barrier() {
                    row_op(op, &r, o)
                } else {
                    r.iter()
                        .enumerate()
                        .map(|(j, &v)| elementwise(op, v, j, o))
                        .collect()
                };
            }
            out.extend(r);
        }
        t.writes += 1;
        t.elements += out.len();
        t.kernels += 1;
        hbm = out;
    }
    (hbm, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols)
            .map(|i| ((i as f32) * 0.37).cos())
            .collect()
    }

    #[test]
    fn matmul_bias_relu_is_six_accesses_unfused_and_two_fused() {
        // Curriculum: 6 HBM accesses unfused, 2 fused (3×).
        let o = Operands::new(16);
        let x = input(8, 16);
        let chain = [Op::Matmul, Op::Bias, Op::Relu];
        let (a, ta) = unfused(&x, &chain, &o);
        let (b, tb) = fused(&x, &chain, &o);
        assert_eq!(a, b);
        assert_eq!((ta.accesses(), tb.accesses()), (6, 2));
        assert_eq!((ta.kernels, tb.kernels), (3, 1));
        assert_eq!(ta.elements, 3 * tb.elements);
    }

    #[test]
    fn a_reduction_is_a_barrier() {
        let o = Operands::new(8);
        let x = input(4, 8);
        let chain = [
            Op::Matmul,
            Op::Scale(0.125),
            Op::Softmax,
            Op::Scale(2.0),
            Op::Gelu,
        ];
        assert_eq!(groups(&chain).len(), 2);
        let (a, ta) = unfused(&x, &chain, &o);
        let (b, tb) = fused(&x, &chain, &o);
        assert_eq!(a, b);
        assert_eq!((ta.accesses(), tb.accesses()), (10, 4));
        // A chain of only elementwise ops is one kernel however long.
        let ew = [Op::Bias, Op::Relu, Op::Scale(3.0), Op::Gelu];
        assert_eq!(fused(&x, &ew, &o).1.accesses(), 2);
        assert_eq!(unfused(&x, &ew, &o).1.accesses(), 8);
    }
}
