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

/// The golden values come from an independent float64 pass of sentence-transformers'
/// pipeline (BERT, mean pooling, L2 normalisation) over the same safetensors:
/// `tests/reference/minilm_reference.py`.
#[test]
fn cosines_and_vectors_match_the_f64_reference() {
    let g = lav_tests::golden("minilm.json");
    let e = Embedder::load(&lav_tests::embedder_dir()).unwrap();
    let sentences: Vec<&str> = g["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let v: Vec<Vec<f32>> = sentences.iter().map(|s| e.embed(s).unwrap()).collect();
    for (i, row) in g["cosine"].as_array().unwrap().iter().enumerate() {
        for (j, want) in row.as_array().unwrap().iter().enumerate() {
            let (got, want) = (cosine(&v[i], &v[j]) as f64, want.as_f64().unwrap());
            assert!(
                (got - want).abs() < 1e-4,
                "{:?} / {:?}: {got} vs {want}",
                sentences[i],
                sentences[j]
            );
        }
    }
    for (i, dims) in g["first_dims"].as_array().unwrap().iter().enumerate() {
        for (k, want) in dims.as_array().unwrap().iter().enumerate() {
            let want = want.as_f64().unwrap();
            assert!((v[i][k] as f64 - want).abs() < 1e-4, "sentence {i} dim {k}");
        }
    }
}
