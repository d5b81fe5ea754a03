//! Floating-point formats bit by bit: FP32, TF32, BF16, FP16, FP8 (E4M3, E5M2) and FP4
//! (E2M1), each a sign, an exponent and a mantissa. One encoder rounds an f32 into any
//! of them to nearest, ties to even (the IEEE default and the hardware conversions'),
//! and one decoder reads the bits back. Formats without infinities (E4M3, E2M1)
//! saturate to their largest value, as the "satfinite" conversions do.

/// How a format spends its top exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// IEEE 754: the all-ones exponent is infinity (mantissa 0) or NaN.
    Ieee,
    /// OCP FP8 E4M3 ("fn"): no infinity; only all-ones exponent and mantissa is NaN.
    NanOnly,
    /// OCP FP4 E2M1: every code is a finite number.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub name: &'static str,
    pub exponent_bits: u32,
    pub mantissa_bits: u32,
    pub special: Special,
}

pub const FP32: Format = Format {
    name: "FP32",
    exponent_bits: 8,
    mantissa_bits: 23,
    special: Special::Ieee,
};
pub const TF32: Format = Format {
    name: "TF32",
    exponent_bits: 8,
    mantissa_bits: 10,
    special: Special::Ieee,
};
pub const BF16: Format = Format {
    name: "BF16",
    exponent_bits: 8,
    mantissa_bits: 7,
    special: Special::Ieee,
};
pub const FP16: Format = Format {
    name: "FP16",
    exponent_bits: 5,
    mantissa_bits: 10,
    special: Special::Ieee,
};
pub const E4M3: Format = Format {
    name: "FP8 E4M3",
    exponent_bits: 4,
    mantissa_bits: 3,
    special: Special::NanOnly,
};
pub const E5M2: Format = Format {
    name: "FP8 E5M2",
    exponent_bits: 5,
    mantissa_bits: 2,
    special: Special::Ieee,
};
pub const E2M1: Format = Format {
    name: "FP4 E2M1",
    exponent_bits: 2,
    mantissa_bits: 1,
    special: Special::None,
};

/// Every format, widest first.
pub const ALL: [Format; 7] = [FP32, TF32, BF16, FP16, E4M3, E5M2, E2M1];

impl Format {
    pub fn bits(&self) -> u32 {
        1 + self.exponent_bits + self.mantissa_bits
    }
    pub fn bias(&self) -> i32 {
        (1 << (self.exponent_bits - 1)) - 1
    }
    fn max_field(&self) -> u32 {
        (1 << self.exponent_bits) - 1
    }
    fn man_mask(&self) -> u32 {
        (1 << self.mantissa_bits) - 1
    }

    /// The largest finite value.
    pub fn max(&self) -> f64 {
        let (e, m) = match self.special {
            Special::Ieee => (self.max_field() - 1, self.man_mask()),
            // All-ones mantissa at the top exponent is NaN.
            Special::NanOnly => (self.max_field(), self.man_mask() - 1),
            Special::None => (self.max_field(), self.man_mask()),
        };
        self.decode(e << self.mantissa_bits | m)
    }

    /// The smallest positive normal value.
    pub fn min_normal(&self) -> f64 {
        2f64.powi(1 - self.bias())
    }

    /// The smallest positive value (a subnormal).
    pub fn min_positive(&self) -> f64 {
        2f64.powi(1 - self.bias() - self.mantissa_bits as i32)
    }

    /// Relative spacing of values near 1 (machine epsilon).
    pub fn epsilon(&self) -> f64 {
        2f64.powi(-(self.mantissa_bits as i32))
    }

    /// Reads a code: sign, biased exponent, mantissa (the low `bits()` bits).
    pub fn decode(&self, code: u32) -> f64 {
        let m = code & self.man_mask();
        let e = (code >> self.mantissa_bits) & self.max_field();
        let sign = if code >> (self.bits() - 1) & 1 == 1 {
            -1.0
        } else {
            1.0
        };
        let top = e == self.max_field();
        match self.special {
            Special::Ieee if top => {
                return if m == 0 {
                    sign * f64::INFINITY
                } else {
                    f64::NAN
                };
            }
            Special::NanOnly if top && m == self.man_mask() => return f64::NAN,
            _ => {}
        }
        let frac = m as f64 / (1u64 << self.mantissa_bits) as f64;
        if e == 0 {
            sign * frac * self.min_normal()
        } else {
            sign * (1.0 + frac) * 2f64.powi(e as i32 - self.bias())
        }
    }

    fn nan(&self) -> u32 {
        match self.special {
            Special::None => 0, // no NaN code: the caller never asks (see encode)
            _ => self.max_field() << self.mantissa_bits | self.man_mask(),
        }
    }

    /// Rounds `x` to the nearest code, ties to the even mantissa. Overflow becomes
    /// infinity where the format has one and the largest value where it does not.
    /// A NaN becomes the format's NaN (E2M1 has none: it gives 0).
    pub fn encode(&self, x: f32) -> u32 {
        let sign = (x.is_sign_negative() as u32) << (self.bits() - 1);
        if x.is_nan() {
            return self.nan();
        }
        let a = (x as f64).abs();
        let max = self.max();
        if a.is_infinite() {
            return sign | self.overflow();
        }
        // Quantum: the spacing of codes in a's binade (subnormal spacing below the
        // smallest normal).
        let exp = if a < self.min_normal() {
            1 - self.bias()
        } else {
            exponent(a)
        };
        let q = 2f64.powi(exp - self.mantissa_bits as i32);
        let k = round_half_even(a / q);
        let v = k * q;
        if v > max {
            // IEEE rounds to infinity only from half an ulp past the largest value.
            let top_ulp = 2f64.powi(exponent(max) - self.mantissa_bits as i32);
            return match self.special {
                Special::Ieee if a >= max + top_ulp / 2.0 => sign | self.overflow(),
                _ => sign | self.code_of(max),
            };
        }
        sign | self.code_of(v)
    }

    fn overflow(&self) -> u32 {
        match self.special {
            Special::Ieee => self.max_field() << self.mantissa_bits,
            _ => self.code_of(self.max()),
        }
    }

    /// The code of a non-negative value that is exactly representable.
    fn code_of(&self, v: f64) -> u32 {
        if v == 0.0 {
            return 0;
        }
        if v < self.min_normal() {
            return (v / self.min_positive()) as u32;
        }
        let e = exponent(v);
        let m = (v / 2f64.powi(e - self.mantissa_bits as i32)) as u32 - (1 << self.mantissa_bits);
        ((e + self.bias()) as u32) << self.mantissa_bits | m
    }

    /// `x` rounded into this format and read back.
    pub fn round(&self, x: f32) -> f64 {
        self.decode(self.encode(x))
    }

    /// A code split into its fields, for a bit-layout display.
    pub fn fields(&self, code: u32) -> Fields {
        Fields {
            sign: code >> (self.bits() - 1) & 1,
            exponent: (code >> self.mantissa_bits) & self.max_field(),
            mantissa: code & self.man_mask(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields {
    pub sign: u32,
    pub exponent: u32,
    pub mantissa: u32,
}

/// ⌊log2 a⌋ for a positive, finite f64, read from its bits (exact, unlike log2).
fn exponent(a: f64) -> i32 {
    ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

/// How well a format holds a set of values: the largest and mean absolute error, the
/// mean relative error over non-zero values, and how many overflowed (saturated or
/// became infinite) or flushed to zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Error {
    pub max_abs: f64,
    pub mean_abs: f64,
    pub mean_rel: f64,
    pub overflowed: usize,
    pub flushed: usize,
}

pub fn error(f: &Format, xs: &[f32]) -> Error {
    let (mut max_abs, mut sum_abs, mut sum_rel, mut nz) = (0.0f64, 0.0, 0.0, 0usize);
    let (mut overflowed, mut flushed) = (0, 0);
    let max = f.max();
    for &x in xs {
        let r = f.round(x);
        let x = x as f64;
        if x.abs() > max {
            overflowed += 1;
        }
        if x != 0.0 && r == 0.0 {
            flushed += 1;
        }
        let e = if r.is_finite() {
            (r - x).abs()
        } else {
            x.abs()
        };
        max_abs = max_abs.max(e);
        sum_abs += e;
        if x != 0.0 {
            sum_rel += e / x.abs();
            nz += 1;
        }
    }
    let n = xs.len().max(1) as f64;
    Error {
        max_abs,
        mean_abs: sum_abs / n,
        mean_rel: sum_rel / nz.max(1) as f64,
        overflowed,
        flushed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_maxima_match_the_curriculum() {
        // Sign/exponent/mantissa and maxima: FP16 1/5/10 max 65,504; BF16 1/8/7;
        // TF32 1/8/10; E4M3 max 448; E5M2 max 57,344; E2M1 max 6.
        let lay = |f: Format| (f.exponent_bits, f.mantissa_bits);
        assert_eq!(lay(FP16), (5, 10));
        assert_eq!(lay(BF16), (8, 7));
        assert_eq!(lay(TF32), (8, 10));
        assert_eq!(FP16.max(), 65_504.0);
        assert_eq!(E4M3.max(), 448.0);
        assert_eq!(E5M2.max(), 57_344.0);
        assert_eq!(E2M1.max(), 6.0);
        assert_eq!(FP32.max(), f32::MAX as f64);
        // BF16 keeps FP32's range.
        assert!((BF16.max() / FP32.max() - 1.0).abs() < 0.01);
        assert_eq!(BF16.min_normal(), FP32.min_normal());
    }

    #[test]
    fn fp16_and_bf16_agree_with_the_half_crate_bit_for_bit() {
        // An independent implementation: the `half` crate's conversions.
        let mut x = 0x1234_5678u32;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let v = f32::from_bits(x);
            if v.is_nan() {
                continue;
            }
            assert_eq!(
                FP16.encode(v),
                half::f16::from_f32(v).to_bits() as u32,
                "{v:e}"
            );
            assert_eq!(
                BF16.encode(v),
                half::bf16::from_f32(v).to_bits() as u32,
                "{v:e}"
            );
        }
        for v in [
            0.0f32, -0.0, 1.0, 65504.0, 65519.0, 65520.0, 1e-8, 5.96e-8, 3e-8,
        ] {
            assert_eq!(
                FP16.encode(v),
                half::f16::from_f32(v).to_bits() as u32,
                "{v:e}"
            );
        }
    }

    #[test]
    fn every_code_round_trips() {
        for f in [FP16, E4M3, E5M2, E2M1, BF16] {
            for code in 0..(1u32 << f.bits()) {
                let v = f.decode(code);
                if v.is_nan() {
                    continue;
                }
                let back = f.encode(v as f32);
                // ±0 are two codes of one value.
                if v == 0.0 {
                    assert_eq!(f.decode(back), 0.0);
                } else {
                    assert_eq!(back, code, "{} code {code:#x} = {v}", f.name);
                }
            }
        }
        // E2M1's eight magnitudes.
        let pos: Vec<f64> = (0..8).map(|c| E2M1.decode(c)).collect();
        assert_eq!(pos, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);
    }

    #[test]
    fn rounding_ties_to_even_and_overflow() {
        // 1 + half an FP16 ulp is a tie: to even (1.0); 1 + 1.5 ulp goes up.
        let ulp = FP16.epsilon() as f32;
        assert_eq!(FP16.round(1.0 + ulp / 2.0), 1.0);
        assert_eq!(FP16.round(1.0 + 1.5 * ulp), 1.0 + 2.0 * ulp as f64);
        assert_eq!(E4M3.round(1000.0), 448.0);
        assert_eq!(E2M1.round(-100.0), -6.0);
        assert_eq!(E5M2.round(1e6), f64::INFINITY);
        assert_eq!(E2M1.round(2.5), 2.0); // tie between 2 and 3: even mantissa
        assert_eq!(E2M1.round(0.2), 0.0);
        let f = E4M3.fields(E4M3.encode(-1.5));
        assert_eq!((f.sign, f.exponent, f.mantissa), (1, 7, 4));
    }

    #[test]
    fn error_grows_as_formats_narrow() {
        let xs: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.37).sin() * 0.1).collect();
        let e: Vec<f64> = [FP16, BF16, E4M3, E2M1]
            .iter()
            .map(|f| error(f, &xs).mean_rel)
            .collect();
        assert!(e[0] < e[1] && e[1] < e[2] && e[2] < e[3], "{e:?}");
        assert_eq!(error(&FP32, &xs).max_abs, 0.0);
    }
}
