//! lav's forward pass against candle-transformers' `quantized_llama` with both sides
//! computing in f32 on the same dequantized weights. Without activation quantization
//! there is no rounding step to amplify small summation-order differences, so this is
//! where "the same model, implemented twice" can be checked tightly: logits within
//! 1e-3 and the same greedy tokens. (Its own test binary, because candle reads
//! `CANDLE_DEQUANTIZE_ALL` once per thread.)

use lav_model::sampler::argmax;
use lav_model::{ChatMessage, Llama, WeightFormat, chat_prompt};
use lav_tests::{candle_logits, candle_model, default_gguf, max_abs_diff, tokenizer};

const PROMPTS: [&str; 3] = [
    "Write a short story about a robot learning to paint.",
    "What is the capital of France?",
    "Explain in one paragraph why the sky is blue.",
];

#[test]
fn f32_logits_and_greedy_tokens_equal_candle_quantized_llama() {
    // SAFETY: set before any candle matmul exists in this thread; no other test here.
    unsafe { std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1") };
    let path = default_gguf();
    let ours = Llama::load(&path, WeightFormat::F32).unwrap();
    for msg in PROMPTS {
        let prompt = tokenizer()
            .encode(&chat_prompt(&[ChatMessage::new("user", msg)], true))
            .unwrap();
        let mut cm = candle_model();
        let mut cache = ours.new_cache();
        let mut mine = ours.next_logits(&prompt, &mut cache).unwrap();
        let mut theirs = candle_logits(&mut cm, &prompt, 0);
        let first = max_abs_diff(&mine, &theirs);
        let mut worst = first;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..32 {
            let (x, y) = (argmax(&mine).0, argmax(&theirs).0);
            a.push(x);
            b.push(y);
            if x != y || i == 31 {
                break;
            }
            mine = ours.next_logits(&[x], &mut cache).unwrap();
            theirs = candle_logits(&mut cm, &[y], prompt.len() + i);
            worst = worst.max(max_abs_diff(&mine, &theirs));
        }
        println!(
            "{msg:?}: f32 logits differ from candle's by {first:.2e} after the prompt, \
             {worst:.2e} at worst over {} greedy steps",
            a.len()
        );
        assert!(
            first <= 1e-3,
            "{msg:?}: last-position logits differ by {first}"
        );
        assert_eq!(a, b, "{msg:?}: greedy tokens differ from candle's");
        assert_eq!(a.len(), 32);
        assert!(worst <= 1e-3, "{msg:?}: decode logits differ by {worst}");
    }
}
