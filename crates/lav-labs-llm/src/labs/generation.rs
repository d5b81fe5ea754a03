//! generation: the learner's prompt through the real model one token at a time. The
//! real next-token distribution before and after each sampling filter (T → top-k →
//! top-p → min-p, the sampler's own chain), its entropy, a seeded continuation that
//! re-rolls identically, and two settings side by side.

use super::Context;
use crate::bpe::show_bytes;
use lav_engine::generate::generate;
use lav_lab::items::ModelSource;
use lav_lab::items::{bar, bars, chip, sig, strip, table, text};
use lav_lab::job::{Job, Progress, State, progress_item};
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values};
use lav_model::sampler::{Filtered, entropy, filter, softmax};
use lav_model::{Llama, Sampler, SamplerConfig, Tokenizer};
use lav_scene::*;
use std::sync::Arc;

/// Tokens generated per continuation: long enough for settings to visibly diverge,
/// short enough to generate in well under a second on two cores.
pub const GENERATED: usize = 24;
/// Bars shown per distribution.
const TOP_N: usize = 12;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let c = Controls {
        prompt: Control::text("prompt", "Prompt", 300, "Once upon a time, there was a"),
        temperature: Control::slider("temperature", "Temperature T", 0.0, 2.0, 0.05, 0.8),
        top_k: Control::slider("top_k", "Top-k (0 keeps all)", 0.0, 200.0, 1.0, 40.0),
        top_p: Control::slider("top_p", "Top-p", 0.05, 1.0, 0.01, 0.9),
        min_p: Control::slider("min_p", "Min-p", 0.0, 0.5, 0.01, 0.0),
        repeat: Control::slider("repeat", "Repetition penalty", 1.0, 2.0, 0.05, 1.0),
        seed: Control::slider("seed", "Seed", 0.0, 9999.0, 1.0, 42.0),
        position: Control::slider(
            "position",
            "Generated token",
            0.0,
            (GENERATED - 1) as f64,
            1.0,
            0.0,
        ),
        reroll: Control::button("reroll", "Re-roll", 1000),
        t_a: Control::slider("t_a", "T for A", 0.0, 2.0, 0.05, 0.2),
        t_b: Control::slider("t_b", "T for B", 0.0, 2.0, 0.05, 1.2),
    };
    let knobs = [&c.top_k, &c.top_p, &c.min_p, &c.repeat];
    fn with<'a>(first: &[&'a Control], rest: &[&'a Control]) -> Vec<&'a Control> {
        first.iter().chain(rest).copied().collect()
    }
    let steps = vec![
        Step::new(
            "loop",
            &with(&[&c.prompt, &c.position, &c.temperature, &c.seed], &knobs),
            Generation::loop_step,
        ),
        Step::new(
            "temperature",
            &[&c.prompt, &c.temperature],
            Generation::temperature,
        ),
        Step::new(
            "filters",
            &with(&[&c.prompt, &c.temperature], &knobs),
            Generation::filters,
        ),
        Step::new(
            "sample",
            &with(&[&c.prompt, &c.temperature, &c.seed, &c.reroll], &knobs),
            Generation::sample,
        ),
        Step::new(
            "compare",
            &with(&[&c.prompt, &c.t_a, &c.t_b, &c.seed], &knobs),
            Generation::compare,
        ),
    ];
    Steps::lab(
        Generation {
            c,
            model: ctx.loader.model().lab()?,
            tokenizer: ctx.loader.tokenizer().lab()?,
            model_name: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
            next: None,
            curve: None,
            run: Job::default(),
            pair: Job::default(),
            rolls: Vec::new(),
        },
        steps,
    )
}

struct Controls {
    prompt: Control,
    temperature: Control,
    top_k: Control,
    top_p: Control,
    min_p: Control,
    repeat: Control,
    seed: Control,
    position: Control,
    reroll: Control,
    t_a: Control,
    t_b: Control,
}

/// What a continuation depends on. The re-roll count is part of it so a press
/// really runs the model again.
#[derive(Clone, Debug, PartialEq)]
struct RunKey {
    prompt: String,
    config: SamplerConfig,
    roll: usize,
}

/// One continuation as the model produced it.
pub struct Continuation {
    pub prompt: Vec<u32>,
    pub tokens: Vec<u32>,
    /// The logits each generated token was sampled from.
    pub logits: Vec<Vec<f32>>,
    pub finish: &'static str,
    pub text: String,
    pub ms_per_token: f64,
}

struct Generation {
    c: Controls,
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    model_name: ModelSource,
    /// The prompt's own next-token logits: (prompt, tokens, logits).
    next: Option<(String, Vec<u32>, Vec<f32>)>,
    /// The entropy-vs-temperature curve for that prompt.
    curve: Option<(String, Vec<(f64, f64)>)>,
    run: Job<RunKey, Continuation>,
    pair: Job<(RunKey, RunKey), (Continuation, Continuation)>,
    /// Every continuation shown so far: settings (without the roll) and text, so a
    /// re-roll can be checked against the first roll with the same seed.
    rolls: Vec<(RunKey, String)>,
}

impl LabState for Generation {
    fn busy(&self) -> bool {
        self.run.busy() || self.pair.busy()
    }
}

/// Generates [`GENERATED`] tokens after `prompt` with the sampler's own chain.
pub fn continuation(
    model: &Llama,
    tok: &Tokenizer,
    prompt: &[u32],
    config: SamplerConfig,
    on_token: impl Fn(usize) -> bool,
) -> Result<Continuation> {
    let mut sampler = Sampler::new(config).lab()?;
    let mut cache = model.new_cache();
    let mut logits = Vec::new();
    let stats = generate(
        model,
        tok,
        prompt,
        &mut sampler,
        GENERATED,
        &mut cache,
        |_, _, l| {
            logits.push(l.to_vec());
            on_token(logits.len())
        },
    )
    .lab()?;
    let steps = stats.generated.len().max(1) as f64;
    Ok(Continuation {
        prompt: prompt.to_vec(),
        text: tok.decode(&stats.generated).lab()?,
        tokens: stats.generated,
        logits,
        finish: stats.finish,
        ms_per_token: (stats.prefill_seconds + stats.decode_seconds) * 1e3 / steps,
    })
}

impl Generation {
    /// What every step reads first: the prompt, the temperature, and the sampler's
    /// settings, checked.
    fn inputs(&self, v: &Values) -> Result<(String, f64, SamplerConfig)> {
        let prompt = v.text(&self.c.prompt).to_string();
        let t = v.num(&self.c.temperature);
        let config = self.config(v, t);
        config.validate().lab()?;
        Ok((prompt, t, config))
    }

    fn config(&self, v: &Values, temperature: f64) -> SamplerConfig {
        let k = v.usize(&self.c.top_k);
        SamplerConfig {
            temperature: temperature as f32,
            top_k: (k > 0).then_some(k),
            top_p: v.num(&self.c.top_p) as f32,
            min_p: v.num(&self.c.min_p) as f32,
            repetition_penalty: v.num(&self.c.repeat) as f32,
            seed: v.num(&self.c.seed) as u64,
        }
    }

    fn prompt_tokens(&self, prompt: &str) -> Result<Vec<u32>> {
        crate::pass::prompt_tokens(&self.tokenizer, prompt)
    }

    /// The prompt's next-token logits, recomputed only for a new prompt.
    fn next_logits(&mut self, prompt: &str) -> Result<(Vec<u32>, Vec<f32>)> {
        if self.next.as_ref().is_none_or(|(p, _, _)| p != prompt) {
            let ids = self.prompt_tokens(prompt)?;
            let mut cache = self.model.new_cache();
            let l = self.model.next_logits(&ids, &mut cache).lab()?;
            self.next = Some((prompt.to_string(), ids, l));
        }
        let (_, ids, l) = self.next.as_ref().expect("just set");
        Ok((ids.clone(), l.clone()))
    }

    /// Entropy (bits) of the prompt's next-token distribution at T = 0.05 … 2,
    /// computed once per prompt (no sorting needed, unlike the bars).
    fn entropy_curve(&mut self, prompt: &str, logits: &[f32]) -> Vec<(f64, f64)> {
        if let Some((p, c)) = &self.curve
            && p == prompt
        {
            return c.clone();
        }
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
        let c: Vec<(f64, f64)> = (1..=40)
            .map(|i| {
                let t = i as f64 * 0.05;
                let (mut z, mut ez) = (0f64, 0f64);
                for &l in logits {
                    let a = (l as f64 - max) / t;
                    let e = a.exp();
                    z += e;
                    ez += e * a;
                }
                // H = ln Z − E[a] for p = e^a / Z.
                (t, bits(z.ln() - ez / z))
            })
            .collect();
        self.curve = Some((prompt.to_string(), c.clone()));
        c
    }

    fn piece(&self, id: u32) -> String {
        show_bytes(&self.tokenizer.token_bytes(id))
    }

    fn start(
        &self,
        key: &RunKey,
    ) -> Result<impl FnOnce(&Progress) -> Result<Continuation> + Send + 'static> {
        let ids = self.prompt_tokens(&key.prompt)?;
        let (model, tok, config) = (
            self.model.clone(),
            self.tokenizer.clone(),
            key.config.clone(),
        );
        Ok(move |p: &Progress| {
            p.set(0, GENERATED as u64, "generating");
            let c = continuation(&model, &tok, &ids, config, |n| {
                p.set(
                    n as u64,
                    GENERATED as u64,
                    format!("generated {n} of {GENERATED} tokens"),
                );
                !p.cancelled()
            })?;
            p.check()?;
            Ok(c)
        })
    }

    fn prov(&self) -> Provenance {
        self.model_name.prov(self.model_name.to_string())
    }

    /// The top tokens of one stage of the chain: kept tokens carry their renormalised
    /// probability; tokens this stage or an earlier one removed are greyed and show the
    /// probability they had after temperature.
    fn stage_bars(&self, f: &Filtered, keep: usize, pick: Option<u32>) -> Vec<Bar> {
        (0..TOP_N.min(f.order.len()))
            .map(|r| {
                let id = f.order[r];
                let piece = self.piece(id);
                if r < keep {
                    let role = if Some(id) == pick {
                        Role::Highlight
                    } else {
                        Role::Vocab
                    };
                    bar(piece, f.renormalised(r, keep) as f64, role)
                } else {
                    bar(
                        format!("{piece} (filtered)"),
                        f.probs[r] as f64,
                        Role::Muted,
                    )
                }
            })
            .collect()
    }
}

fn bits(nats: f64) -> f64 {
    nats / std::f64::consts::LN_2
}

/// Entropy of the distribution left after the first `keep` tokens of `f`, in nats.
fn kept_entropy(f: &Filtered, keep: usize) -> f64 {
    let mass: f32 = f.probs[..keep].iter().sum();
    let p: Vec<f32> = f.probs[..keep].iter().map(|p| p / mass).collect();
    entropy(&p)
}

impl Generation {
    /// The generation run for the current inputs: its key once it is ready, or the
    /// progress scene to show while it runs in the background.
    fn run_or_progress(&mut self, v: &Values) -> Result<std::result::Result<RunKey, Scene>> {
        let (prompt, _, config) = self.inputs(v)?;
        let key = RunKey {
            prompt,
            config,
            roll: v.usize(&self.c.reroll),
        };
        let work = self.start(&key)?;
        if let State::Running(p) = self.run.get(&key, work)? {
            let progress = progress_item("progress", "Running the model", p);
            return Ok(Err(Scene::new().with(progress)));
        }
        Ok(Ok(key))
    }

    fn loop_step(&mut self, v: &Values) -> Result<Scene> {
        let key = match self.run_or_progress(v)? {
            Ok(key) => key,
            Err(progress) => return Ok(progress),
        };
        let config = &key.config;
        let prov = self.prov();
        let mut scene = Scene::new();
        let run = self.run.ready(&key).expect("ready");
        let n = run.tokens.len();
        if n == 0 {
            scene.push(text(
                "note",
                "Nothing generated",
                prov,
                "The model ended its turn at once: try another prompt.",
            ));
            return Ok(scene);
        }
        let want = v.usize(&self.c.position);
        let i = want.min(n - 1);
        let mut chips = self.chips(&run.prompt, Role::Token);
        for (j, &id) in run.tokens[..=i].iter().enumerate() {
            chips.push(chip(self.piece(id), Some(id), Role::Vocab, j == i));
        }
        scene.push(strip(
            "sequence",
            &format!("Prompt + {} generated token(s)", i + 1),
            prov.clone(),
            chips,
        ));
        let mut history = run.prompt.clone();
        history.extend(&run.tokens[..i]);
        let f = filter(config, &run.logits[i], &history);
        let picked = run.tokens[i];
        scene.push(bars(
            "distribution",
            &format!(
                "Step {}: what the model predicted after {} tokens (top 12, after the filters)",
                i + 1,
                history.len()
            ),
            prov.clone(),
            "probability",
            self.stage_bars(&f, f.after_min_p, Some(picked)),
        ));
        let p = f
            .candidates()
            .iter()
            .find(|c| c.id == picked)
            .map_or(0.0, |c| c.prob);
        let mut body = format!(
            "Step {}: the model read {} tokens and scored all {} tokens of its vocabulary. The sampler kept {}, drew {:?} (p = {:.3}) with seed {}, and appended it; step {} starts from {} tokens.",
            i + 1,
            history.len(),
            f.order.len(),
            f.after_min_p,
            self.piece(picked),
            p,
            config.seed,
            i + 2,
            history.len() + 1
        );
        if want > i {
            body.push_str(&format!(
                " (Generated token {} was asked for; this run stopped after {n}: {}.)",
                want + 1,
                run.finish
            ));
        }
        scene.push(text(
            "loop",
            "Predict, pick, append, repeat",
            prov.clone(),
            body,
        ));
        Ok(scene)
    }

    fn temperature(&mut self, v: &Values) -> Result<Scene> {
        let (prompt, t, _) = self.inputs(v)?;
        let prov = self.prov();
        let mut scene = Scene::new();
        let (ids, logits) = self.next_logits(&prompt)?;
        scene.push(self.prompt_strip(&ids));
        let raw = filter(
            &SamplerConfig {
                temperature: 1.0,
                ..SamplerConfig::default()
            },
            &logits,
            &[],
        );
        let hot = filter(
            &SamplerConfig {
                temperature: t as f32,
                ..SamplerConfig::default()
            },
            &logits,
            &[],
        );
        scene.push(bars(
            "raw",
            &format!(
                "T = 1: the model's own softmax over {} logits (top 12)",
                lav_scene::text::group_digits(logits.len() as u64)
            ),
            prov.clone(),
            "probability",
            self.stage_bars(&raw, raw.order.len(), None),
        ));
        let title = if t == 0.0 {
            "T = 0: greedy, all the mass on the argmax".to_string()
        } else {
            format!("T = {t:.2}: softmax(z / T) (top 12)")
        };
        scene.push(bars(
            "scaled",
            &title,
            prov.clone(),
            "probability",
            self.stage_bars(&hot, hot.order.len(), None),
        ));
        let (h1, ht) = (entropy(&softmax(&logits)), entropy(&hot.probs));
        scene.push(table(
            "entropy",
            "Entropy H = −Σ p ln p of the whole distribution",
            prov.clone(),
            &["distribution", "H (nats)", "H (bits)", "top token p"],
            vec![
                vec![
                    "T = 1".into(),
                    sig(h1),
                    sig(bits(h1)),
                    sig(raw.probs[0] as f64),
                ],
                vec![
                    format!("T = {t:.2}"),
                    sig(ht),
                    sig(bits(ht)),
                    sig(hot.probs[0] as f64),
                ],
            ],
        ));
        let curve = self.entropy_curve(&prompt, &logits);
        scene.push(Item::new(
            "entropy_curve",
            "Entropy of the real next-token distribution as T changes",
            prov,
            Primitive::Plot(Plot {
                x_label: "temperature T".into(),
                y_label: "entropy (bits)".into(),
                x_log: false,
                y_log: false,
                series: vec![
                    Series {
                        name: "H(T)".into(),
                        points: curve,
                        line: true,
                        role: Role::Vocab,
                    },
                    Series {
                        name: "this T".into(),
                        points: vec![(t, bits(ht))],
                        line: false,
                        role: Role::Highlight,
                    },
                ],
            }),
        ));
        Ok(scene)
    }

    fn filters(&mut self, v: &Values) -> Result<Scene> {
        let (prompt, t, config) = self.inputs(v)?;
        let prov = self.prov();
        let mut scene = Scene::new();
        let (ids, logits) = self.next_logits(&prompt)?;
        scene.push(self.prompt_strip(&ids));
        let f = filter(&config, &logits, &ids);
        let k = config.top_k.map_or("all".to_string(), |k| k.to_string());
        let stages = [
            ("t", format!("1. temperature T = {t:.2}"), f.order.len()),
            ("top_k", format!("2. top-k, k = {k}"), f.after_top_k),
            (
                "top_p",
                format!("3. top-p, p = {:.2}, on what top-k left", config.top_p),
                f.after_top_p,
            ),
            (
                "min_p",
                format!("4. min-p = {:.2} × the top token", config.min_p),
                f.after_min_p,
            ),
        ];
        for (id, title, keep) in &stages {
            scene.push(bars(
                id,
                title,
                prov.clone(),
                "probability",
                self.stage_bars(&f, *keep, None),
            ));
        }
        let vocab = f.order.len();
        let mass = |keep: usize| f.probs[..keep].iter().sum::<f32>() as f64;
        scene.push(table(
            "chain",
            "The chain, in order: T → top-k → top-p → min-p, then renormalise and draw",
            prov,
            &[
                "stage",
                "tokens left",
                "mass kept (after T)",
                "entropy (bits)",
            ],
            stages
                .iter()
                .map(|(_, title, keep)| {
                    vec![
                        title.clone(),
                        format!("{keep} of {vocab}"),
                        sig(mass(*keep)),
                        sig(bits(kept_entropy(&f, *keep))),
                    ]
                })
                .collect(),
        ));
        Ok(scene)
    }

    fn sample(&mut self, v: &Values) -> Result<Scene> {
        let key = match self.run_or_progress(v)? {
            Ok(key) => key,
            Err(progress) => return Ok(progress),
        };
        let (prompt, config) = (&key.prompt, &key.config);
        let prov = self.prov();
        let mut scene = Scene::new();
        let run = self.run.ready(&key).expect("ready");
        let mut chips = self.chips(&run.prompt, Role::Token);
        chips.extend(
            run.tokens
                .iter()
                .map(|&id| chip(self.piece(id), Some(id), Role::Vocab, true)),
        );
        scene.push(strip(
            "continuation",
            "Prompt + continuation",
            prov.clone(),
            chips,
        ));
        scene.push(text(
            "text",
            "The continuation",
            prov.clone(),
            format!("{}{}", prompt, run.text),
        ));
        let same = RunKey {
            roll: 0,
            ..key.clone()
        };
        let first = self.rolls.iter().position(|(k, _)| *k == same);
        let check = match first {
            Some(j) if self.rolls[j].1 == run.text => format!(
                "identical to roll #{} with seed {}: yes",
                j + 1,
                config.seed
            ),
            Some(j) => {
                format!("identical to roll #{} with seed {}: NO", j + 1, config.seed)
            }
            None => format!(
                "first roll with seed {}: press Re-roll to run the model again",
                config.seed
            ),
        };
        let text_now = run.text.clone();
        let rows = vec![
            vec!["seed".into(), config.seed.to_string()],
            vec!["settings".into(), describe(config)],
            vec![
                "tokens generated".into(),
                format!("{} ({})", run.tokens.len(), run.finish),
            ],
            vec![
                "time per token on this machine".into(),
                format!("{:.1} ms", run.ms_per_token),
            ],
            vec!["re-roll check".into(), check],
        ];
        if first.is_none() {
            self.rolls.push((same, text_now));
        }
        scene.push(table(
            "roll",
            "Seeded sampling",
            Provenance::engine("lav sampler on the real model"),
            &["", "value"],
            rows,
        ));
        Ok(scene)
    }

    fn compare(&mut self, v: &Values) -> Result<Scene> {
        let (prompt, _, _) = self.inputs(v)?;
        let prov = self.prov();
        let mut scene = Scene::new();
        let (ta, tb) = (v.num(&self.c.t_a), v.num(&self.c.t_b));
        let ka = RunKey {
            prompt: prompt.clone(),
            config: self.config(v, ta),
            roll: 0,
        };
        let kb = RunKey {
            prompt: prompt.clone(),
            config: self.config(v, tb),
            roll: 0,
        };
        let (wa, wb) = (self.start(&ka)?, self.start(&kb)?);
        let both = (ka.clone(), kb.clone());
        if let State::Running(p) = self.pair.get(&both, move |p| Ok((wa(p)?, wb(p)?)))? {
            scene.push(progress_item("progress", "Running the model twice", p));
            return Ok(scene);
        }
        let pair = self.pair.ready(&both).expect("ready");
        let (a, b) = pair;
        let diverge = a.tokens.iter().zip(&b.tokens).position(|(x, y)| x != y);
        for (id, name, r, tt) in [("a", "A", a, ta), ("b", "B", b, tb)] {
            let mut chips = self.chips(&r.prompt, Role::Token);
            chips.extend(r.tokens.iter().enumerate().map(|(j, &t)| {
                let role = if diverge.is_some_and(|d| j >= d) {
                    Role::Highlight
                } else {
                    Role::Vocab
                };
                chip(self.piece(t), Some(t), role, Some(j) == diverge)
            }));
            scene.push(strip(
                id,
                &format!("{name}: T = {tt:.2}, seed {}", ka.config.seed),
                prov.clone(),
                chips,
            ));
        }
        let body = match diverge {
            Some(d) => format!(
                "A and B agree for {d} token(s) and first differ at generated token {}: A drew {:?}, B drew {:?}. Both read the same logits there; only the temperature differs.",
                d + 1,
                self.piece(a.tokens[d]),
                self.piece(b.tokens[d])
            ),
            None => format!(
                "A and B produced the same {} tokens: at these settings the top token wins every draw.",
                a.tokens.len().min(b.tokens.len())
            ),
        };
        scene.push(text("divergence", "Where they diverge", prov.clone(), body));
        if let Some(d) = diverge {
            let mut history = a.prompt.clone();
            history.extend(&a.tokens[..d]);
            for (id, name, r, tt) in [("dist_a", "A", a, ta), ("dist_b", "B", b, tb)] {
                let cfg = SamplerConfig {
                    temperature: tt as f32,
                    ..ka.config.clone()
                };
                let f = filter(&cfg, &r.logits[d], &history);
                scene.push(bars(
                    id,
                    &format!("{name} at token {} (T = {tt:.2})", d + 1),
                    prov.clone(),
                    "probability",
                    self.stage_bars(&f, f.after_min_p, Some(r.tokens[d])),
                ));
            }
        }
        Ok(scene)
    }
}

impl Generation {
    fn chips(&self, ids: &[u32], role: Role) -> Vec<Chip> {
        ids.iter()
            .map(|&id| chip(self.piece(id), Some(id), role, false))
            .collect()
    }

    fn prompt_strip(&self, ids: &[u32]) -> Item {
        strip(
            "prompt",
            "The prompt, as tokens",
            self.prov(),
            self.chips(ids, Role::Token),
        )
    }
}

fn describe(c: &SamplerConfig) -> String {
    format!(
        "T {:.2}, top-k {}, top-p {:.2}, min-p {:.2}, repetition penalty {:.2}",
        c.temperature,
        c.top_k.map_or("off".to_string(), |k| k.to_string()),
        c.top_p,
        c.min_p,
        c.repetition_penalty
    )
}
