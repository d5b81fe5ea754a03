//! Turning logits into the next token.
//!
//! The chain, in order: repetition penalty → temperature → softmax → top-k → top-p →
//! min-p → renormalise → draw with a seeded RNG. Temperature 0 is greedy (argmax).
//! The sampler returns the processed distribution it drew from, so the generation
//! lab can show what each knob removed.

use crate::error::{ModelError, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct SamplerConfig {
    /// 0 means greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens; `None` keeps all.
    pub top_k: Option<usize>,
    /// Keep the smallest set whose probability reaches p; 1.0 keeps all.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p ×` the top token; 0 keeps all.
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of already-seen tokens; 1.0 is off.
    pub repetition_penalty: f32,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            seed: 42,
        }
    }
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        Self::default()
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::Sampling(m));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!(
                "--temperature must be 0 (greedy) or positive, got {}",
                self.temperature
            ));
        }
        if self.top_k == Some(0) {
            return bad("--top-k must be at least 1 (leave it out to keep every token)".into());
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("--top-p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..1.0).contains(&self.min_p) {
            return bad(format!("--min-p must be in [0, 1), got {}", self.min_p));
        }
        if !self.repetition_penalty.is_finite() || self.repetition_penalty <= 0.0 {
            return bad(format!(
                "--repeat-penalty must be positive, got {}",
                self.repetition_penalty
            ));
        }
        Ok(())
    }
}

/// A token that survived the chain, with its processed probability.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Candidate {
    pub id: u32,
    /// Logit after the repetition penalty and temperature.
    pub logit: f32,
    /// Probability after filtering and renormalising.
    pub prob: f32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sampled {
    pub token: u32,
    /// The distribution drawn from, most likely first. Greedy keeps one candidate.
    pub candidates: Vec<Candidate>,
}

pub struct Sampler {
    pub config: SamplerConfig,
    rng: ChaCha8Rng,
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Result<Self> {
        config.validate()?;
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        Ok(Self { config, rng })
    }

    /// Picks the next token from `logits`, penalising tokens in `history`.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Sampled {
        let c = &self.config;
        let mut l = logits.to_vec();
        if c.repetition_penalty != 1.0 {
            let mut seen = history.to_vec();
            seen.sort_unstable();
            seen.dedup();
            for &t in &seen {
                if let Some(v) = l.get_mut(t as usize) {
                    *v = if *v > 0.0 {
                        *v / c.repetition_penalty
                    } else {
                        *v * c.repetition_penalty
                    };
                }
            }
        }
        if c.temperature == 0.0 {
            let (id, logit) = argmax(&l);
            return Sampled {
                token: id,
                candidates: vec![Candidate {
                    id,
                    logit,
                    prob: 1.0,
                }],
            };
        }
        for v in &mut l {
            *v /= c.temperature;
        }
        let mut order: Vec<u32> = (0..l.len() as u32).collect();
        order.sort_by(|&a, &b| l[b as usize].total_cmp(&l[a as usize]).then(a.cmp(&b)));
        let max = l[order[0] as usize];
        let exps: Vec<f32> = order.iter().map(|&i| (l[i as usize] - max).exp()).collect();
        let total: f32 = exps.iter().sum();
        let probs: Vec<f32> = exps.iter().map(|e| e / total).collect();

        let mut keep = probs.len();
        if let Some(k) = c.top_k {
            keep = keep.min(k);
        }
        if c.top_p < 1.0 {
            let mut cum = 0.0;
            for (i, p) in probs.iter().take(keep).enumerate() {
                cum += p;
                if cum >= c.top_p {
                    keep = i + 1;
                    break;
                }
            }
        }
        if c.min_p > 0.0 {
            let floor = probs[0] * c.min_p;
            keep = probs[..keep]
                .iter()
                .take_while(|&&p| p >= floor)
                .count()
                .max(1);
        }
        let kept: f32 = probs[..keep].iter().sum();
        let candidates: Vec<Candidate> = order[..keep]
            .iter()
            .zip(&probs[..keep])
            .map(|(&id, &p)| Candidate {
                id,
                logit: l[id as usize],
                prob: p / kept,
            })
            .collect();
        let u: f32 = self.rng.random();
        let mut cum = 0.0;
        let mut token = candidates[candidates.len() - 1].id;
        for cand in &candidates {
            cum += cand.prob;
            if u < cum {
                token = cand.id;
                break;
            }
        }
        Sampled { token, candidates }
    }
}

/// Index and value of the largest logit; the lowest index wins a tie.
pub fn argmax(l: &[f32]) -> (u32, f32) {
    let mut best = (0u32, f32::NEG_INFINITY);
    for (i, &v) in l.iter().enumerate() {
        if v > best.1 {
            best = (i as u32, v);
        }
    }
    best
}

/// Softmax of a logit vector (probabilities for display).
pub fn softmax(l: &[f32]) -> Vec<f32> {
    let max = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = l.iter().map(|v| (v - max).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SamplerConfig {
        SamplerConfig {
            temperature: 1.0,
            ..Default::default()
        }
    }

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(SamplerConfig::greedy()).unwrap();
        assert_eq!(s.sample(&[0.1, 3.0, 2.9], &[]).token, 1);
    }

    #[test]
    fn top_k_keeps_k() {
        let mut s = Sampler::new(SamplerConfig {
            top_k: Some(2),
            ..cfg()
        })
        .unwrap();
        let r = s.sample(&[1.0, 4.0, 3.0, 2.0], &[]);
        let ids: Vec<u32> = r.candidates.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1, 2]);
        let total: f32 = r.candidates.iter().map(|c| c.prob).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn top_p_keeps_smallest_nucleus() {
        // softmax(ln 0.5, ln 0.3, ln 0.2) = (0.5, 0.3, 0.2): p = 0.7 keeps two.
        let l = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let mut s = Sampler::new(SamplerConfig {
            top_p: 0.7,
            ..cfg()
        })
        .unwrap();
        let r = s.sample(&l, &[]);
        assert_eq!(r.candidates.len(), 2);
        assert!((r.candidates[0].prob - 0.625).abs() < 1e-5);
    }

    #[test]
    fn min_p_drops_unlikely() {
        let l = [0.6f32.ln(), 0.3f32.ln(), 0.1f32.ln()];
        let mut s = Sampler::new(SamplerConfig {
            min_p: 0.2,
            ..cfg()
        })
        .unwrap();
        assert_eq!(s.sample(&l, &[]).candidates.len(), 2);
    }

    #[test]
    fn repetition_penalty_changes_greedy_choice() {
        let mut s = Sampler::new(SamplerConfig {
            repetition_penalty: 2.0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.sample(&[3.0, 2.0], &[0]).token, 1);
    }

    #[test]
    fn seeded_draws_repeat_and_follow_the_distribution() {
        let l = [0.0f32, 1.0, 2.0];
        let draw = |seed| {
            let mut s = Sampler::new(SamplerConfig { seed, ..cfg() }).unwrap();
            (0..2000)
                .map(|_| s.sample(&l, &[]).token)
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        let d = draw(3);
        let p = softmax(&l);
        for t in 0..3 {
            let f = d.iter().filter(|&&x| x == t).count() as f32 / d.len() as f32;
            assert!(
                (f - p[t as usize]).abs() < 0.04,
                "token {t}: {f} vs {}",
                p[t as usize]
            );
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        for c in [
            SamplerConfig {
                temperature: -1.0,
                ..cfg()
            },
            SamplerConfig {
                top_p: 2.0,
                ..cfg()
            },
            SamplerConfig {
                top_k: Some(0),
                ..cfg()
            },
            SamplerConfig {
                min_p: 1.5,
                ..cfg()
            },
        ] {
            assert!(Sampler::new(c).is_err());
        }
    }
}
