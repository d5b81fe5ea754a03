//! JSON Schema `minimum`/`maximum` (and the exclusive forms) on integers and numbers:
//! the matcher takes a digit, a sign or a point only while some number that starts
//! with the text so far lies within the bounds.
//!
//! Values are kept exactly, as integers in millionths (a number has at most
//! [`FRAC_DIGITS`] fraction digits here), so no rounding decides a boundary.

/// Fraction digits a bounded number may have.
pub const FRAC_DIGITS: u32 = 6;
const SCALE: i128 = 1_000_000;
/// Integer-part digits; bounds beyond them are refused (the node falls back to an
/// unbounded number).
const INT_DIGITS: u32 = 10;

/// Where a bounded number's text stands. Encoded in a matcher frame's position:
/// 0 is the start, 1 is after `-`, and anything else has at least one digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NumPos {
    neg: bool,
    int: u64,
    /// Integer-part digits typed.
    digits: u32,
    /// `None` before a point; `Some(k)`: the point and k fraction digits.
    frac_digits: Option<u32>,
    frac: u64,
}

pub(crate) const START: u64 = 0;
pub(crate) const SIGN: u64 = 1;

impl NumPos {
    pub(crate) fn encode(&self) -> u64 {
        // bit 63: has digits; 62: negative; 58..62: digits; 55..58: point and
        // fraction digits + 1 (0: no point); 20..55: integer part; 0..20: fraction.
        (1 << 63)
            | (u64::from(self.neg) << 62)
            | (u64::from(self.digits) << 58)
            | (u64::from(self.frac_digits.map_or(0, |k| k + 1)) << 55)
            | (self.int << 20)
            | self.frac
    }

    pub(crate) fn decode(p: u64) -> Option<NumPos> {
        if p >> 63 == 0 {
            return None;
        }
        let fd = ((p >> 55) & 0b111) as u32;
        Some(NumPos {
            neg: (p >> 62) & 1 == 1,
            digits: ((p >> 58) & 0b1111) as u32,
            frac_digits: fd.checked_sub(1),
            int: (p >> 20) & ((1 << 35) - 1),
            frac: p & ((1 << 20) - 1),
        })
    }
}

/// The bounds, in millionths, and whether only integers are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub lo: i128,
    pub hi: i128,
    pub integer: bool,
}

impl Bounds {
    /// From a schema's bounds; `None` when there are none, or they are beyond what
    /// the node can hold (the caller then keeps an unbounded number). An empty range
    /// is an error.
    pub fn from_schema(
        schema: &serde_json::Value,
        integer: bool,
    ) -> Result<Option<Bounds>, String> {
        let f = |k: &str| schema.get(k).and_then(serde_json::Value::as_f64);
        let (min, max) = (f("minimum"), f("maximum"));
        let (xmin, xmax) = (f("exclusiveMinimum"), f("exclusiveMaximum"));
        if min.is_none() && max.is_none() && xmin.is_none() && xmax.is_none() {
            return Ok(None);
        }
        let limit = 10f64.powi(INT_DIGITS as i32) - 1.0;
        if [min, max, xmin, xmax]
            .iter()
            .flatten()
            .any(|v| v.abs() > limit)
        {
            return Ok(None);
        }
        let unit = if integer { SCALE } else { 1 };
        let scaled = |v: f64| (v * SCALE as f64).round() as i128;
        // The smallest allowed step above an exclusive bound: one unit of the grid.
        let mut lo = -(limit as i128) * SCALE;
        let mut hi = (limit as i128) * SCALE;
        if let Some(v) = min {
            lo = lo.max(scaled(v));
        }
        if let Some(v) = xmin {
            lo = lo.max(scaled(v) + 1);
        }
        if let Some(v) = max {
            hi = hi.min(scaled(v));
        }
        if let Some(v) = xmax {
            hi = hi.min(scaled(v) - 1);
        }
        if integer {
            lo = lo.div_euclid(unit) * unit + if lo.rem_euclid(unit) == 0 { 0 } else { unit };
            hi = hi.div_euclid(unit) * unit;
        }
        if lo > hi {
            return Err("no number lies within its minimum and maximum".into());
        }
        Ok(Some(Bounds { lo, hi, integer }))
    }

    /// The values (in millionths) that texts starting with `p` can still reach, as
    /// closed intervals; integers only reach multiples of a million.
    fn reach(&self, p: NumPos) -> Vec<(i128, i128)> {
        let sign = |(a, b): (i128, i128)| if p.neg { (-b, -a) } else { (a, b) };
        if let Some(k) = p.frac_digits {
            let v = p.int as i128 * SCALE + p.frac as i128 * 10i128.pow(FRAC_DIGITS - k);
            let more = 10i128.pow(FRAC_DIGITS - k) - 1;
            return vec![sign((v, v + more))];
        }
        let top = if self.integer { 0 } else { SCALE - 1 };
        if p.int == 0 {
            // "0" takes no more digits, only a fraction.
            return vec![sign((0, top))];
        }
        (0..=INT_DIGITS - p.digits)
            .map(|j| {
                let m = 10i128.pow(j);
                let a = p.int as i128 * m * SCALE;
                let b = ((p.int as i128 + 1) * m - 1) * SCALE + top;
                sign((a, b))
            })
            .collect()
    }

    fn hits(&self, r: (i128, i128)) -> bool {
        self.has_multiple(r, if self.integer { SCALE } else { 1 })
    }

    /// Some multiple of `g` (in millionths) lies in `r` and within the bounds.
    fn has_multiple(&self, (a, b): (i128, i128), g: i128) -> bool {
        let (a, b) = (a.max(self.lo), b.min(self.hi));
        a <= b && (a + g - 1).div_euclid(g) * g <= b
    }

    fn viable(&self, p: NumPos) -> bool {
        self.reach(p).into_iter().any(|r| self.hits(r))
    }

    /// The position after byte `b`, if a number within bounds can still follow.
    pub(crate) fn feed(&self, pos: u64, b: u8) -> Option<u64> {
        let next = match (pos, NumPos::decode(pos)) {
            (START, _) if b == b'-' => {
                // Some negative value must be reachable (integers: "-0" is refused).
                let need = if self.integer { -SCALE } else { 0 };
                return (self.lo <= need).then_some(SIGN);
            }
            (START | SIGN, _) if b.is_ascii_digit() => NumPos {
                neg: pos == SIGN,
                int: u64::from(b - b'0'),
                digits: 1,
                frac_digits: None,
                frac: 0,
            },
            (_, Some(mut p)) => {
                match (b, p.frac_digits) {
                    (b'.', None) if !self.integer => p.frac_digits = Some(0),
                    (d, None) if d.is_ascii_digit() && p.int != 0 && p.digits < INT_DIGITS => {
                        p.int = p.int * 10 + u64::from(d - b'0');
                        p.digits += 1;
                    }
                    (d, Some(k)) if d.is_ascii_digit() && k < FRAC_DIGITS => {
                        p.frac = p.frac * 10 + u64::from(d - b'0');
                        p.frac_digits = Some(k + 1);
                    }
                    _ => return None,
                }
                p
            }
            _ => return None,
        };
        if self.integer && next.neg && next.int == 0 {
            return None;
        }
        self.viable(next).then(|| next.encode())
    }

    /// The text so far is a number within bounds.
    pub(crate) fn complete(&self, pos: u64) -> bool {
        let Some(p) = NumPos::decode(pos) else {
            return false;
        };
        if p.frac_digits == Some(0) {
            return false;
        }
        let v = p.int as i128 * SCALE
            + p.frac as i128 * 10i128.pow(FRAC_DIGITS - p.frac_digits.unwrap_or(FRAC_DIGITS));
        let v = if p.neg { -v } else { v };
        (self.lo..=self.hi).contains(&v)
    }

    /// Some byte can follow.
    pub(crate) fn can_take(&self, pos: u64) -> bool {
        b"0123456789-.".iter().any(|&b| self.feed(pos, b).is_some())
    }

    /// The fewest bytes that finish a number from `pos`: for each way to go on (more
    /// integer digits, then perhaps a point and fraction digits), whether a value of
    /// that shape lies within bounds.
    pub(crate) fn rest(&self, pos: u64) -> usize {
        const NONE: usize = usize::MAX / 4;
        let Some(p) = NumPos::decode(pos) else {
            // At the start or after `-`: one byte, then the rest from there.
            return b"0123456789-"
                .iter()
                .filter_map(|&c| self.feed(pos, c))
                .map(|q| self.rest(q).saturating_add(1))
                .min()
                .unwrap_or(NONE);
        };
        let sign = |(a, b): (i128, i128)| if p.neg { (-b, -a) } else { (a, b) };
        // Values reachable with `f` more fraction digits are multiples of this.
        let grid = |digits: u32| 10i128.pow(FRAC_DIGITS - digits);
        if let Some(k) = p.frac_digits {
            let v = p.int as i128 * SCALE + p.frac as i128 * grid(k);
            let r = sign((v, v + grid(k) - 1));
            return (u32::from(k == 0)..=FRAC_DIGITS - k)
                .find(|&f| self.has_multiple(r, grid(k + f)))
                .map_or(NONE, |f| f as usize);
        }
        let mut best = NONE;
        let extra = if p.int == 0 { 0 } else { INT_DIGITS - p.digits };
        for j in 0..=extra {
            let m = 10i128.pow(j);
            let whole = sign((
                p.int as i128 * m * SCALE,
                ((p.int as i128 + 1) * m - 1) * SCALE + SCALE - 1,
            ));
            if self.has_multiple(whole, SCALE) {
                best = best.min(j as usize);
            } else if let Some(f) = (1..=FRAC_DIGITS)
                .filter(|_| !self.integer)
                .find(|&f| self.has_multiple(whole, grid(f)))
            {
                best = best.min((j + 1 + f) as usize);
            }
        }
        best
    }
}
