//! Tokenization of every fixture tokenizer equals the Hugging Face `tokenizers` output recorded
//! by tools/fixtures/make_checkpoints.py (with and without special tokens), and decoding and
//! streaming give back the text.

mod common;

use common::ids;
use ferrollm::tokenizer::{StreamDecoder, Tokenizer};
use serde_json::Value;

fn fixtures() -> Vec<std::path::PathBuf> {
    let dirs: Vec<_> = common::hf_fixtures()
        .into_iter()
        .filter(|p| p.join("tokenizer.json").exists())
        .collect();
    assert!(dirs.len() >= 6, "fixture checkpoints are missing");
    dirs
}

#[test]
fn tokenization_matches_hugging_face() {
    for dir in fixtures() {
        let tok = Tokenizer::from_hf_file(&dir.join("tokenizer.json")).unwrap();
        let reference: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        let cases = reference["tokenization"].as_array().unwrap();
        assert!(cases.len() >= 8, "{}", dir.display());
        for case in cases {
            let text = case["text"].as_str().unwrap();
            assert_eq!(
                tok.encode(text, true).unwrap(),
                ids(&case["ids"]),
                "{}: {text:?}",
                dir.display()
            );
            assert_eq!(
                tok.encode(text, false).unwrap(),
                ids(&case["ids_no_special"]),
                "{}: {text:?}",
                dir.display()
            );
            let decoded = tok.decode(&ids(&case["ids_no_special"])).unwrap();
            assert_eq!(
                decoded,
                case["decoded"].as_str().unwrap(),
                "{}: {text:?}",
                dir.display()
            );
        }
        let prompt = reference["prompt"].as_str().unwrap();
        assert_eq!(
            tok.encode(prompt, true).unwrap(),
            ids(&reference["input_ids"]),
            "{}",
            dir.display()
        );
    }
}

#[test]
fn streaming_pieces_are_utf8_and_add_up_to_the_decoded_text() {
    for dir in fixtures() {
        let tok = Tokenizer::from_hf_file(&dir.join("tokenizer.json")).unwrap();
        let reference: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        for case in reference["tokenization"].as_array().unwrap() {
            let ids = ids(&case["ids_no_special"]);
            let whole = tok.decode(&ids).unwrap();
            let mut dec = StreamDecoder::new();
            let mut streamed = String::new();
            for &id in &ids {
                if let Some(piece) = dec.push(&tok, id).unwrap() {
                    assert!(
                        !piece.contains('\u{FFFD}') || whole.contains('\u{FFFD}'),
                        "{piece:?}"
                    );
                    streamed.push_str(&piece);
                }
            }
            if let Some(rest) = dec.flush(&tok).unwrap() {
                streamed.push_str(&rest);
            }
            assert_eq!(streamed, whole, "{}: {:?}", dir.display(), case["text"]);
        }
    }
}
