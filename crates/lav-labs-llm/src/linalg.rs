//! The little linear algebra the labs compute themselves: norms, cosines, and PCA by
//! power iteration (deterministic: fixed start vectors, fixed iteration count).

pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

pub fn norm(a: &[f32]) -> f64 {
    dot(a, a).sqrt()
}

/// cos(a, b) = a·b / (‖a‖‖b‖); 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let d = norm(a) * norm(b);
    if d == 0.0 { 0.0 } else { dot(a, b) / d }
}

/// The result of a PCA: points projected on the leading components, and the share of
/// the total variance each component explains.
#[derive(Clone, Debug)]
pub struct Pca {
    pub coords: Vec<Vec<f64>>,
    pub explained: Vec<f64>,
}

/// Projects `rows` (n × d) on their `k` principal components. Rows are centred; each
/// component is found by power iteration on XᵀX and removed before the next.
pub fn pca(rows: &[Vec<f32>], k: usize) -> Pca {
    let n = rows.len();
    let d = rows.first().map_or(0, Vec::len);
    let mut mean = vec![0f64; d];
    for r in rows {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64 / n as f64;
        }
    }
    let mut x: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect())
        .collect();
    let total: f64 = x.iter().flatten().map(|v| v * v).sum();
    let mut coords = vec![Vec::with_capacity(k); n];
    let mut explained = Vec::with_capacity(k);
    for c in 0..k {
        // A fixed, non-degenerate start vector.
        let mut v: Vec<f64> = (0..d)
            .map(|i| 1.0 + ((i * 7 + c * 13) % 11) as f64 / 10.0)
            .collect();
        normalize(&mut v);
        for _ in 0..300 {
            // v ← Xᵀ(X v), normalised.
            let xv: Vec<f64> = x
                .iter()
                .map(|r| r.iter().zip(&v).map(|(a, b)| a * b).sum())
                .collect();
            let mut next = vec![0f64; d];
            for (r, s) in x.iter().zip(&xv) {
                for (nv, a) in next.iter_mut().zip(r) {
                    *nv += a * s;
                }
            }
            if normalize(&mut next) == 0.0 {
                break;
            }
            // Converged: further rounds would not move the axis visibly.
            let moved: f64 = next.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum();
            v = next;
            if moved < 1e-20 {
                break;
            }
        }
        // A fixed sign: the largest component of v is positive.
        let big = v
            .iter()
            .copied()
            .fold(0f64, |a, b| if b.abs() > a.abs() { b } else { a });
        if big < 0.0 {
            v.iter_mut().for_each(|a| *a = -*a);
        }
        let proj: Vec<f64> = x
            .iter()
            .map(|r| r.iter().zip(&v).map(|(a, b)| a * b).sum())
            .collect();
        let var: f64 = proj.iter().map(|p| p * p).sum();
        explained.push(if total > 0.0 { var / total } else { 0.0 });
        for ((r, p), out) in x.iter_mut().zip(&proj).zip(coords.iter_mut()) {
            out.push(*p);
            for (a, b) in r.iter_mut().zip(&v) {
                *a -= p * b;
            }
        }
    }
    Pca { coords, explained }
}

fn normalize(v: &mut [f64]) -> f64 {
    let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|a| *a /= n);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_a_vector_with_itself_is_one() {
        let a = [0.3f32, -1.2, 4.0];
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-12);
        assert!((cosine(&a, &[-0.3, 1.2, -4.0]) + 1.0).abs() < 1e-12);
        assert_eq!(cosine(&a, &[0.0; 3]), 0.0);
    }

    #[test]
    fn pca_finds_the_axis_of_a_stretched_cloud() {
        // Points along (1, 1, 0) with a little spread along (1, -1, 0).
        let rows: Vec<Vec<f32>> = (0..20)
            .map(|i| {
                let t = i as f32 - 9.5;
                let s = if i % 2 == 0 { 0.1 } else { -0.1 };
                vec![t + s, t - s, 0.0]
            })
            .collect();
        let p = pca(&rows, 2);
        assert!(p.explained[0] > 0.99, "{:?}", p.explained);
        assert!((p.explained.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // The first coordinate is the position along the line, times √2 (the small
        // spread is slightly correlated with t, which tilts the axis a little).
        assert!(
            (p.coords[19][0] - 9.5 * 2f64.sqrt()).abs() < 1e-3,
            "{:?}",
            p.coords[19]
        );
        assert!(p.coords[19][1].abs() < 0.15, "{:?}", p.coords[19]);
    }
}
