//! The tokenizer rebuilt from GGUF metadata against llama.cpp's, and round trips.

use lav_tests::{golden, ids, tokenizer};
use proptest::prelude::*;

#[test]
fn ids_equal_llama_cpp_golden_list() {
    let g = golden("tokenizer_ids.json");
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 12);
    let tok = tokenizer();
    let mut failures = Vec::new();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = ids(&c["ids"]);
        let got = tok.encode(text).unwrap();
        if got != want {
            failures.push(format!(
                "{text:?}\n  llama.cpp {want:?}\n  lav       {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn chat_markup_and_no_prefix_space() {
    let tok = tokenizer();
    assert_eq!(tok.encode("user").unwrap(), vec![4093]);
    assert_eq!(tok.encode("<|im_start|>").unwrap(), vec![1]);
    assert_eq!(tok.encode("<|im_end|>").unwrap(), vec![2]);
    assert_eq!(tok.encode("<|endoftext|>").unwrap(), vec![0]);
    assert!(tok.is_stop(2) && tok.is_stop(0));
}

#[test]
fn digits_are_split_individually() {
    let tok = tokenizer();
    let ids = tok.encode("12345").unwrap();
    assert_eq!(ids.len(), 5);
    assert_eq!(tok.decode(&ids).unwrap(), "12345");
}

#[test]
fn stream_decoding_equals_whole_decoding() {
    let tok = tokenizer();
    let text = "emoji 👩‍💻 and 日本語, done";
    let ids = tok.encode(text).unwrap();
    let mut s = lav_model::TextStream::default();
    let mut out = String::new();
    for id in ids {
        let piece = s.push(tok, id);
        assert!(
            !piece.contains('\u{FFFD}'),
            "partial character leaked: {piece:?}"
        );
        out.push_str(&piece);
    }
    out.push_str(&s.finish());
    assert_eq!(out, text);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn decode_encode_round_trips(text in any::<String>()) {
        let tok = tokenizer();
        let ids = tok.encode(&text).unwrap();
        prop_assert_eq!(tok.decode(&ids).unwrap(), text);
    }

    #[test]
    fn round_trips_mixed_scripts(text in "[a-zA-Z0-9 \\t\\n.,'!?éñ日本😀<|>_]{0,80}") {
        let tok = tokenizer();
        let ids = tok.encode(&text).unwrap();
        prop_assert_eq!(tok.decode(&ids).unwrap(), text);
    }
}
