//! The model architectures ferrollm converts and runs, and their names in each vocabulary.

use std::fmt;

/// A supported model architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Architecture {
    Gpt2,
    GptJ,
    GptNeoX,
    Llama,
    Mpt,
    Bloom,
}

impl Architecture {
    pub const ALL: [Architecture; 6] = [
        Architecture::Gpt2,
        Architecture::GptJ,
        Architecture::GptNeoX,
        Architecture::Llama,
        Architecture::Mpt,
        Architecture::Bloom,
    ];

    /// llama.cpp's name, used for `general.architecture` and as the prefix of GGUF keys.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Architecture::Gpt2 => "gpt2",
            Architecture::GptJ => "gptj",
            Architecture::GptNeoX => "gptneox",
            Architecture::Llama => "llama",
            Architecture::Mpt => "mpt",
            Architecture::Bloom => "bloom",
        }
    }

    /// The architecture named `name`: llama.cpp's names, llm-rs' `.meta` names and transformers'
    /// `model_type` values ("gpt_neox", "gpt-j", …), case-insensitive.
    pub fn from_name(name: &str) -> Option<Architecture> {
        let n = name.to_ascii_lowercase().replace(['-', '_'], "");
        Architecture::ALL.into_iter().find(|a| a.gguf_name() == n)
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.gguf_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for a in Architecture::ALL {
            assert_eq!(Architecture::from_name(a.gguf_name()), Some(a));
        }
        assert_eq!(
            Architecture::from_name("gpt_neox"),
            Some(Architecture::GptNeoX)
        );
        assert_eq!(Architecture::from_name("GPT-J"), Some(Architecture::GptJ));
        assert_eq!(Architecture::from_name("falcon"), None);
    }
}
