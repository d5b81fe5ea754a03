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
}
