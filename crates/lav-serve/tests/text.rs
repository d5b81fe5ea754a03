//! Stop strings over streamed text: whatever way the text is cut into pieces, the
//! client receives exactly the text before the first stop string, and nothing it
//! receives is ever taken back.

use lav_serve::text::ChoiceText;
use proptest::prelude::*;

/// The reference: the whole text cut at the earliest match of any stop string.
fn expected(text: &str, stops: &[String]) -> String {
    let cut = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
        .unwrap_or(text.len());
    text[..cut].to_string()
}

fn streamed(pieces: &[String], stops: &[String]) -> (String, bool) {
    let mut t = ChoiceText::new(stops);
    let mut out = String::new();
    for p in pieces {
        out.push_str(&t.release(p));
    }
    out.push_str(&t.finish());
    (out, t.stopped())
}

#[test]
fn a_stop_string_split_across_pieces_is_caught() {
    let stops = vec!["\nUser:".to_string()];
    let pieces: Vec<String> = ["Hello", " there\n", "Us", "er", ": more"]
        .map(String::from)
        .to_vec();
    assert_eq!(streamed(&pieces, &stops), ("Hello there".to_string(), true));
    // A near miss is released in full once it stops matching.
    let pieces: Vec<String> = ["a\nUs", "ed b"].map(String::from).to_vec();
    assert_eq!(streamed(&pieces, &stops), ("a\nUsed b".to_string(), false));
    // The earliest of several stop strings wins; multi-byte text is cut on characters.
    let stops = vec!["ß!".to_string(), "é".to_string()];
    let pieces: Vec<String> = ["naïve ", "caf", "é ß!"].map(String::from).to_vec();
    assert_eq!(streamed(&pieces, &stops), ("naïve caf".to_string(), true));
}

proptest! {
    #[test]
    fn streaming_equals_cutting_the_whole_text(
        text in "[ab\\nUé:]{0,40}",
        cuts in proptest::collection::vec(0usize..40, 0..8),
        stops in proptest::collection::vec("[ab\\nUé:]{0,4}", 0..3),
    ) {
        let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let mut at: Vec<usize> = cuts.iter().filter_map(|&c| bounds.get(c).copied()).collect();
        at.push(0);
        at.push(text.len());
        at.sort_unstable();
        at.dedup();
        let pieces: Vec<String> = at.windows(2).map(|w| text[w[0]..w[1]].to_string()).collect();
        let (out, stopped) = streamed(&pieces, &stops);
        let want = expected(&text, &stops);
        prop_assert_eq!(&out, &want);
        prop_assert_eq!(stopped, want.len() < text.len() || stops.iter().any(|s| !s.is_empty() && text.contains(s.as_str())));
    }
}
