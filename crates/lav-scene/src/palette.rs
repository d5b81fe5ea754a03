//! The one colour scheme. Categorical colours are Okabe & Ito's palette ("Color
//! Universal Design", 2008), chosen to stay distinct under the common forms of colour
//! blindness; the sequential scale is viridis and the diverging one runs purple to
//! orange through white (both readable without red–green contrast).

use serde::{Deserialize, Serialize};

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// Black or white, whichever reads better as text on this colour (every renderer
    /// picks chip and cell text the same way).
    pub fn ink(self) -> Rgb {
        if self.luminance() > 0.35 {
            BLACK
        } else {
            WHITE
        }
    }

    /// Relative luminance (WCAG), to pick readable text over a cell.
    pub fn luminance(self) -> f64 {
        let lin = |c: u8| {
            let c = c as f64 / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(self.0) + 0.7152 * lin(self.1) + 0.0722 * lin(self.2)
    }

    fn lerp(a: Rgb, b: Rgb, t: f64) -> Rgb {
        let m = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * t).round() as u8;
        Rgb(m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
    }
}

pub const BLACK: Rgb = Rgb(0x00, 0x00, 0x00);
pub const WHITE: Rgb = Rgb(0xFF, 0xFF, 0xFF);
pub const ORANGE: Rgb = Rgb(0xE6, 0x9F, 0x00);
pub const SKY_BLUE: Rgb = Rgb(0x56, 0xB4, 0xE9);
pub const BLUISH_GREEN: Rgb = Rgb(0x00, 0x9E, 0x73);
pub const YELLOW: Rgb = Rgb(0xF0, 0xE4, 0x42);
pub const BLUE: Rgb = Rgb(0x00, 0x72, 0xB2);
pub const VERMILLION: Rgb = Rgb(0xD5, 0x5E, 0x00);
pub const REDDISH_PURPLE: Rgb = Rgb(0xCC, 0x79, 0xA7);
pub const GREY: Rgb = Rgb(0x99, 0x99, 0x99);

/// What a colour means. Every lab and renderer colours by role, so "a head" or "a
/// weight" looks the same everywhere (in prose, in the terminal and in 3D).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Token,
    Position,
    Channel,
    Head,
    Vocab,
    Weight,
    Activation,
    Attention,
    Residual,
    Norm,
    /// The thing the learner selected.
    Highlight,
    /// Filtered out, masked or inactive.
    Muted,
    /// A counterfactual the lab computes but the real model does not do.
    WhatIf,
}

impl Role {
    pub fn color(self) -> Rgb {
        match self {
            Role::Token => SKY_BLUE,
            Role::Position => REDDISH_PURPLE,
            Role::Channel => BLUISH_GREEN,
            Role::Head => ORANGE,
            Role::Vocab => BLUE,
            Role::Weight => BLUE,
            Role::Activation => BLUISH_GREEN,
            Role::Attention => ORANGE,
            Role::Residual => SKY_BLUE,
            Role::Norm => REDDISH_PURPLE,
            Role::Highlight => YELLOW,
            Role::Muted => GREY,
            Role::WhatIf => VERMILLION,
        }
    }

    /// The colour of the `i`-th series or group, cycling through the palette.
    pub fn series(i: usize) -> Rgb {
        const CYCLE: [Rgb; 7] = [
            BLUE,
            ORANGE,
            BLUISH_GREEN,
            VERMILLION,
            SKY_BLUE,
            REDDISH_PURPLE,
            YELLOW,
        ];
        CYCLE[i % CYCLE.len()]
    }
}

/// How a heatmap maps values to colours.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColorScale {
    /// `min` is dark purple, `max` is yellow (viridis).
    Sequential { min: f64, max: f64 },
    /// `center` is white; below runs to purple, above to orange.
    Diverging { min: f64, center: f64, max: f64 },
}

/// Viridis at nine evenly spaced stops (matplotlib's table), interpolated linearly.
const VIRIDIS: [Rgb; 9] = [
    Rgb(68, 1, 84),
    Rgb(71, 45, 123),
    Rgb(59, 82, 139),
    Rgb(44, 114, 142),
    Rgb(33, 145, 140),
    Rgb(40, 174, 128),
    Rgb(94, 201, 98),
    Rgb(173, 220, 48),
    Rgb(253, 231, 37),
];
const DIVERGING_LOW: Rgb = Rgb(0x5E, 0x3C, 0x99);
const DIVERGING_MID: Rgb = Rgb(0xF7, 0xF7, 0xF7);
const DIVERGING_HIGH: Rgb = Rgb(0xE6, 0x61, 0x01);

impl ColorScale {
    /// A sequential scale over the finite values of `v` (0..1 when there are none).
    pub fn fit(v: &[f32]) -> Self {
        let (min, max) = finite_range(v).unwrap_or((0.0, 1.0));
        ColorScale::Sequential { min, max }
    }

    /// A diverging scale centred on 0, symmetric around it.
    pub fn fit_signed(v: &[f32]) -> Self {
        let (min, max) = finite_range(v).unwrap_or((-1.0, 1.0));
        let m = min.abs().max(max.abs()).max(f64::MIN_POSITIVE);
        ColorScale::Diverging {
            min: -m,
            center: 0.0,
            max: m,
        }
    }

    /// Where `v` falls on the scale, 0..=1 (clamped; NaN maps to 0).
    pub fn position(&self, v: f64) -> f64 {
        let t = match *self {
            ColorScale::Sequential { min, max } => (v - min) / (max - min),
            ColorScale::Diverging { min, center, max } => {
                if v < center {
                    0.5 * (v - min) / (center - min)
                } else {
                    0.5 + 0.5 * (v - center) / (max - center)
                }
            }
        };
        if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) }
    }

    /// The colour of `v`. Values that are not finite (a masked −∞) get the muted grey.
    pub fn color(&self, v: f64) -> Rgb {
        if !v.is_finite() {
            return GREY;
        }
        let t = self.position(v);
        match self {
            ColorScale::Sequential { .. } => {
                let x = t * (VIRIDIS.len() - 1) as f64;
                let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
                Rgb::lerp(VIRIDIS[i], VIRIDIS[i + 1], x - i as f64)
            }
            ColorScale::Diverging { .. } => {
                if t < 0.5 {
                    Rgb::lerp(DIVERGING_LOW, DIVERGING_MID, t * 2.0)
                } else {
                    Rgb::lerp(DIVERGING_MID, DIVERGING_HIGH, t * 2.0 - 1.0)
                }
            }
        }
    }
}

/// The smallest and largest finite value, if any.
pub fn value_range(v: &[f32]) -> Option<(f64, f64)> {
    let mut it = v.iter().filter(|x| x.is_finite()).map(|&x| x as f64);
    let first = it.next()?;
    Some(it.fold((first, first), |(a, b), x| (a.min(x), b.max(x))))
}

/// [`value_range`], widened to a unit span when every value is the same.
fn finite_range(v: &[f32]) -> Option<(f64, f64)> {
    let (lo, hi) = value_range(v)?;
    Some(if lo == hi { (lo, lo + 1.0) } else { (lo, hi) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_hit_their_end_colours_and_grey_out_masked_cells() {
        let s = ColorScale::Sequential { min: 0.0, max: 1.0 };
        assert_eq!(s.color(0.0), VIRIDIS[0]);
        assert_eq!(s.color(1.0), VIRIDIS[8]);
        assert_eq!(s.color(2.0), VIRIDIS[8]);
        assert_eq!(s.color(f64::NEG_INFINITY), GREY);
        let d = ColorScale::fit_signed(&[-2.0, 1.0]);
        assert_eq!(d.color(0.0), DIVERGING_MID);
        assert_eq!(d.color(-2.0), DIVERGING_LOW);
        assert_eq!(d.color(2.0), DIVERGING_HIGH);
        // Brighter viridis stops really are brighter (text colour depends on it).
        assert!(
            VIRIDIS
                .windows(2)
                .all(|w| w[0].luminance() < w[1].luminance())
        );
    }

    #[test]
    fn every_role_has_a_palette_colour() {
        use std::collections::HashSet;
        let okabe_ito: HashSet<Rgb> = [
            BLACK,
            ORANGE,
            SKY_BLUE,
            BLUISH_GREEN,
            YELLOW,
            BLUE,
            VERMILLION,
            REDDISH_PURPLE,
            GREY,
        ]
        .into();
        for r in [Role::Token, Role::Head, Role::Muted, Role::WhatIf] {
            assert!(okabe_ito.contains(&r.color()));
        }
        assert_eq!(Rgb(0xE6, 0x9F, 0x00).hex(), "#e69f00");
    }
}
