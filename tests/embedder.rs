//! The MiniLM sentence embedder.

use lav_model::Embedder;
use lav_model::embedder::cosine;

#[test]
fn paraphrase_is_closer_than_unrelated_sentence() {
    let e = Embedder::load(&lav_tests::embedder_dir()).unwrap();
    let a = e.embed("A man is playing a guitar.").unwrap();
    let b = e
        .embed("Someone is strumming an acoustic guitar on stage.")
        .unwrap();
    let c = e
        .embed("The central bank raised interest rates again this quarter.")
        .unwrap();
    assert_eq!(a.len(), 384);
    let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "embeddings are unit length");
    let (ab, ac) = (cosine(&a, &b), cosine(&a, &c));
    println!("guitar/strumming {ab:.3}, guitar/bank {ac:.3}");
    assert!(ab > ac + 0.3, "{ab} vs {ac}");
}
