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

#[derive(Clone, Debug, PartialEq, Serialize)]
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
        let f = filter(&self.config, logits, history);
        let candidates = f.candidates();
        if self.config.temperature == 0.0 {
            // Greedy: no draw, so the RNG stream is the same whatever T was before.
            return Sampled {
                token: candidates[0].id,
                candidates,
            };
        }
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

    /// The token [`Sampler::sample`] picks, without ranking the whole vocabulary when
    /// the choice is greedy: a serving engine samples every sequence every step, and
    /// sorting 49,152 logits for each costs more than the step's attention.
    pub fn next_token(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        if self.config.temperature != 0.0 {
            return self.sample(logits, history).token;
        }
        let penalized;
        let l = if self.config.repetition_penalty != 1.0 {
            penalized = penalize(logits, history, self.config.repetition_penalty);
            &penalized[..]
        } else {
            logits
        };
        // `sample` takes the first of the order (logit descending by `total_cmp`,
        // then id ascending): the first index holding the greatest value.
        let mut best = 0;
        for (i, v) in l.iter().enumerate().skip(1) {
            if v.total_cmp(&l[best]) == std::cmp::Ordering::Greater {
                best = i;
            }
        }
        best as u32
    }
}

/// The logits with every token of `history` penalised once (CTRL's rule: positive
/// logits divided by the penalty, negative ones multiplied).
fn penalize(logits: &[f32], history: &[u32], penalty: f32) -> Vec<f32> {
    let mut l = logits.to_vec();
    let mut seen = history.to_vec();
    seen.sort_unstable();
    seen.dedup();
    for &t in &seen {
        if let Some(v) = l.get_mut(t as usize) {
            *v = if *v > 0.0 { *v / penalty } else { *v * penalty };
        }
    }
    l
}

/// Every stage of the chain on one logit vector, so a lab can show what each knob
/// removed. Tokens are listed most likely first; a stage keeps a prefix of that order
/// (penalty and temperature reorder nothing after they are applied).
#[derive(Clone, Debug, Serialize)]
pub struct Filtered {
    /// Token ids, most likely first after penalty and temperature (ties: lower id).
    pub order: Vec<u32>,
    /// Logits after the repetition penalty, by token id.
    pub penalized: Vec<f32>,
    /// `softmax(penalized / T)` in `order`; greedy (T = 0) is one-hot on the argmax.
    pub probs: Vec<f32>,
    /// How many of `order` survive top-k, then top-p (on the renormalised top-k
    /// distribution), then min-p. Each is ≤ the one before.
    pub after_top_k: usize,
    pub after_top_p: usize,
    pub after_min_p: usize,
}

impl Filtered {
    /// The tokens left at the end, renormalised: the distribution drawn from.
    pub fn candidates(&self) -> Vec<Candidate> {
        let keep = self.after_min_p;
        let kept: f32 = self.probs[..keep].iter().sum();
        self.order[..keep]
            .iter()
            .zip(&self.probs[..keep])
            .map(|(&id, &p)| Candidate {
                id,
                logit: self.penalized[id as usize],
                prob: p / kept,
            })
            .collect()
    }

    /// Probability of the token at `rank` after the first `keep` survive,
    /// renormalised over them (0 for a filtered token).
    pub fn renormalised(&self, rank: usize, keep: usize) -> f32 {
        if rank >= keep {
            return 0.0;
        }
        self.probs[rank] / self.probs[..keep].iter().sum::<f32>()
    }
}

/// The chain without the draw: repetition penalty → temperature → softmax → top-k →
/// top-p → min-p. Top-p measures its nucleus on the distribution top-k left,
/// renormalised, as Hugging Face's warpers and llama.cpp's samplers do.
pub fn filter(c: &SamplerConfig, logits: &[f32], history: &[u32]) -> Filtered {
    let l = if c.repetition_penalty != 1.0 {
        penalize(logits, history, c.repetition_penalty)
    } else {
        logits.to_vec()
    };
    let mut order: Vec<u32> = (0..l.len() as u32).collect();
    order.sort_by(|&a, &b| l[b as usize].total_cmp(&l[a as usize]).then(a.cmp(&b)));
    if c.temperature == 0.0 {
        let mut probs = vec![0.0; l.len()];
        probs[0] = 1.0;
        return Filtered {
            order,
            penalized: l,
            probs,
            after_top_k: 1,
            after_top_p: 1,
            after_min_p: 1,
        };
    }
    let max = l[order[0] as usize] / c.temperature;
    let exps: Vec<f32> = order
        .iter()
        .map(|&i| (l[i as usize] / c.temperature - max).exp())
        .collect();
    let total: f32 = exps.iter().sum();
    let probs: Vec<f32> = exps.iter().map(|e| e / total).collect();

    let after_top_k = c.top_k.map_or(probs.len(), |k| k.min(probs.len()));
    let mut after_top_p = after_top_k;
    if c.top_p < 1.0 {
        let mass: f32 = probs[..after_top_k].iter().sum();
        let mut cum = 0.0;
        for (i, p) in probs[..after_top_k].iter().enumerate() {
            cum += p / mass;
            if cum >= c.top_p {
                after_top_p = i + 1;
                break;
            }
        }
    }
    let mut after_min_p = after_top_p;
    if c.min_p > 0.0 {
        let floor = probs[0] * c.min_p;
        after_min_p = probs[..after_top_p]
            .iter()
            .take_while(|&&p| p >= floor)
            .count()
            .max(1);
    }
    Filtered {
        order,
        penalized: l,
        probs,
        after_top_k,
        after_top_p,
        after_min_p,
    }
}

/// Shannon entropy `−Σ p ln p` in nats (divide by ln 2 for bits).
pub fn entropy(p: &[f32]) -> f64 {
    p.iter()
        .filter(|&&x| x > 0.0)
        .map(|&x| -(x as f64) * (x as f64).ln())
        .sum()
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
    fn next_token_is_the_token_sample_picks() {
        // Ties, penalties, greedy and sampled: the same token, and the same RNG
        // stream afterwards.
        let mut logits: Vec<f32> = (0..500).map(|i| ((i * 37 % 101) as f32) / 10.0).collect();
        logits[7] = 10.0;
        logits[300] = 10.0;
        let history = [7u32, 42, 300, 7];
        for (temperature, penalty) in [(0.0, 1.0), (0.0, 1.3), (0.8, 1.0), (0.8, 1.2)] {
            let c = SamplerConfig {
                temperature,
                repetition_penalty: penalty,
                top_p: 0.9,
                seed: 5,
                ..Default::default()
            };
            let (mut a, mut b) = (Sampler::new(c.clone()).unwrap(), Sampler::new(c).unwrap());
            for _ in 0..20 {
                assert_eq!(
                    a.next_token(&logits, &history),
                    b.sample(&logits, &history).token
                );
            }
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
    fn top_k_comes_before_top_p() {
        // (0.4, 0.3, 0.2, 0.1), k = 2, p = 0.5. Top-k first leaves (0.57, 0.43), whose
        // nucleus for 0.5 is one token; top-p first would keep two.
        let l = [0.4f32.ln(), 0.3f32.ln(), 0.2f32.ln(), 0.1f32.ln()];
        let c = SamplerConfig {
            top_k: Some(2),
            top_p: 0.5,
            ..cfg()
        };
        let f = filter(&c, &l, &[]);
        assert_eq!((f.after_top_k, f.after_top_p), (2, 1));
    }

    #[test]
    fn temperature_comes_before_top_p() {
        // A hotter distribution is flatter, so the same p needs more tokens.
        let l = [3.0f32, 2.0, 1.0, 0.0, -1.0];
        let nucleus = |t| {
            filter(
                &SamplerConfig {
                    temperature: t,
                    top_p: 0.9,
                    ..cfg()
                },
                &l,
                &[],
            )
            .after_top_p
        };
        assert_eq!(nucleus(0.5), 2);
        assert_eq!(nucleus(2.0), 4);
    }

    #[test]
    fn low_temperature_is_argmax() {
        let l = [0.3f32, 2.5, 2.4, -1.0];
        for seed in 0..50 {
            let mut s = Sampler::new(SamplerConfig {
                temperature: 1e-3,
                seed,
                ..cfg()
            })
            .unwrap();
            assert_eq!(s.sample(&l, &[]).token, argmax(&l).0);
        }
    }

    #[test]
    fn entropy_of_uniform_is_ln_n() {
        assert!((entropy(&[0.25; 4]) - 4f64.ln()).abs() < 1e-9);
        assert_eq!(entropy(&[1.0, 0.0]), 0.0);
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
