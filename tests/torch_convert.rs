//! Converting a PyTorch `.bin` checkpoint gives the same file, byte for byte, as converting the
//! safetensors of the same model (tests/fixtures/torch/hf/<name> was written by torch.save from
//! the model in tests/fixtures/hf/<name>; the folders share their name, which ends up in the
//! metadata).

mod common;

use common::fixture;
use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::format::{Container, GgmlType};
use ferrollm::ErrorKind;
use std::path::Path;

fn convert(dir: &Path, out: &Path, container: Container, dtype: GgmlType) -> Vec<u8> {
    let path = Converter::open(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .convert(out, &ConvertParams { container, dtype }, &mut |_| true)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    std::fs::read(path).unwrap()
}

fn same_output(name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = fixture(&format!("torch/hf/{name}"));
    let st_dir = fixture(&format!("hf/{name}"));
    assert!(!bin_dir.join("model.safetensors").exists());
    for (container, dtype, ext) in [
        (Container::Gguf, GgmlType::F16, "gguf"),
        (Container::Gguf, GgmlType::F32, "gguf"),
        (Container::Ggjt, GgmlType::F16, "bin"),
        (Container::Gguf, GgmlType::Q4_0, "gguf"), // one pass straight to a quantized type
    ] {
        let from_bin = convert(
            &bin_dir,
            &tmp.path().join(format!("bin-{}.{ext}", dtype.name())),
            container,
            dtype,
        );
        let from_st = convert(
            &st_dir,
            &tmp.path().join(format!("st-{}.{ext}", dtype.name())),
            container,
            dtype,
        );
        assert!(
            from_bin == from_st,
            "{name} {container} {}: converting pytorch_model.bin and model.safetensors differ",
            dtype.name()
        );
    }
}

#[test]
fn gpt2_bin_converts_to_the_same_gguf_as_its_safetensors() {
    same_output("gpt2");
}

#[test]
fn sharded_llama_bf16_bin_converts_to_the_same_gguf_as_its_safetensors() {
    same_output("llama-bf16");
}

fn copy_dir(src: &Path, dst: &Path) {
    for f in std::fs::read_dir(src).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, dst.join(f.file_name().unwrap())).unwrap();
        }
    }
}

const MARKER: &str = "/tmp/ferrollm-torch-fixture-payload-ran";

#[test]
fn a_malicious_bin_is_refused_by_the_converter() {
    let _ = std::fs::remove_file(MARKER);
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture("torch/hf/gpt2"), tmp.path());
    std::fs::copy(
        fixture("torch/malicious/os_system.bin"),
        tmp.path().join("pytorch_model.bin"),
    )
    .unwrap();
    let e = Converter::open(tmp.path()).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(
        e.message().contains("posix.system") && e.message().contains("pytorch_model.bin"),
        "{e}"
    );
    assert!(!Path::new(MARKER).exists(), "the payload ran");
}

#[test]
fn safetensors_are_preferred_when_a_folder_has_both() {
    // The .bin beside them is never opened (here it would be refused).
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture("hf/gpt2"), tmp.path());
    std::fs::copy(
        fixture("torch/malicious/os_system.bin"),
        tmp.path().join("pytorch_model.bin"),
    )
    .unwrap();
    let conv = Converter::open(tmp.path()).unwrap();
    let files: Vec<_> = conv.checkpoint().files().collect();
    assert_eq!(files, vec![tmp.path().join("model.safetensors").as_path()]);
}

#[test]
fn a_folder_without_weights_names_every_accepted_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("hf/gpt2/config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let e = Converter::open(tmp.path()).err().unwrap();
    for name in [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ] {
        assert!(e.message().contains(name), "{e}");
    }
}
