//! `config.json` of a Hugging Face checkpoint: typed look-ups that name the file and key at fault.

use crate::error::{Error, IoContext, Result};
use serde_json::{Map, Value as Json};
use std::path::{Path, PathBuf};

/// The parsed `config.json` of a model folder.
#[derive(Clone, Debug)]
pub struct HfConfig {
    path: PathBuf,
    root: Map<String, Json>,
}

impl HfConfig {
    /// Reads `dir/config.json`.
    pub fn load(dir: &Path) -> Result<HfConfig> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).at(&path, "read the model configuration")?;
        Self::parse(path, &text)
    }

    /// Parses the text of a `config.json`; `path` only names it in messages.
    pub fn parse(path: PathBuf, text: &str) -> Result<HfConfig> {
        match serde_json::from_str::<Json>(text) {
            Ok(Json::Object(root)) => Ok(HfConfig { path, root }),
            Ok(_) => Err(Error::format(&path, "is not a JSON object")),
            Err(e) => Err(Error::format(&path, format!("is not valid JSON: {e}"))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw value of `key` (a `.` separates nested objects: `attn_config.clip_qkv`).
    /// A JSON `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&Json> {
        let mut parts = key.split('.');
        let mut v = self.root.get(parts.next()?)?;
        for p in parts {
            v = v.as_object()?.get(p)?;
        }
        (!v.is_null()).then_some(v)
    }

    /// The first of `keys` present.
    fn first<'a>(&'a self, keys: &[&'a str]) -> Option<(&'a str, &'a Json)> {
        keys.iter().find_map(|k| self.get(k).map(|v| (*k, v)))
    }

    fn bad(&self, key: &str, what: &str, v: &Json) -> Error {
        Error::format(&self.path, format!("`{key}` must be {what}, found {v}"))
    }

    fn missing(&self, keys: &[&str]) -> Error {
        let names: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        Error::format(
            &self.path,
            format!(
                "missing {} (needed to convert this model)",
                names.join(" or ")
            ),
        )
    }

    /// A non-negative integer under the first of `keys` present, if any.
    pub fn opt_usize(&self, keys: &[&str]) -> Result<Option<usize>> {
        let Some((key, v)) = self.first(keys) else {
            return Ok(None);
        };
        let n = match v {
            Json::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                    .map(|f| f as u64)
            }),
            _ => None,
        };
        match n.and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(self.bad(key, "a non-negative integer", v)),
        }
    }

    /// A positive integer under the first of `keys` present; an error naming them when absent.
    pub fn usize(&self, keys: &[&str]) -> Result<usize> {
        match self.opt_usize(keys)? {
            Some(0) => Err(Error::format(
                &self.path,
                format!(
                    "`{}` must be positive, found 0",
                    self.first(keys).unwrap().0
                ),
            )),
            Some(n) => Ok(n),
            None => Err(self.missing(keys)),
        }
    }

    /// A number under the first of `keys` present, if any.
    pub fn opt_f64(&self, keys: &[&str]) -> Result<Option<f64>> {
        let Some((key, v)) = self.first(keys) else {
            return Ok(None);
        };
        match v.as_f64() {
            Some(f) if f.is_finite() => Ok(Some(f)),
            _ => Err(self.bad(key, "a finite number", v)),
        }
    }

    /// A boolean under the first of `keys` present, if any.
    pub fn opt_bool(&self, keys: &[&str]) -> Result<Option<bool>> {
        let Some((key, v)) = self.first(keys) else {
            return Ok(None);
        };
        match v.as_bool() {
            Some(b) => Ok(Some(b)),
            None => Err(self.bad(key, "true or false", v)),
        }
    }

    /// A string under `key`, if present (a non-string value is ignored).
    pub fn opt_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// `architectures[0]`, if present.
    pub fn architecture_class(&self) -> Option<&str> {
        self.get("architectures")?.as_array()?.first()?.as_str()
    }

    /// `tie_word_embeddings`, or `default` when absent (transformers' per-architecture default).
    pub fn tied_embeddings(&self, default: bool) -> Result<bool> {
        Ok(self.opt_bool(&["tie_word_embeddings"])?.unwrap_or(default))
    }

    /// The rotary parameters, wherever this transformers version keeps them: transformers 5 puts
    /// them in `rope_parameters` (`rope_theta`, `rope_type`, `factor`, `partial_rotary_factor`, …);
    /// earlier versions keep `rope_theta` at the top level and scaling in `rope_scaling`
    /// (`type` or `rope_type`, `factor`, …).
    pub fn rope(&self) -> Result<RopeConfig> {
        let params = self
            .get("rope_parameters")
            .or_else(|| self.get("rope_scaling"))
            .and_then(Json::as_object);
        let sub = |k: &str| params.and_then(|p| p.get(k)).filter(|v| !v.is_null());
        let num = |k: &str, top: &[&str]| -> Result<Option<f64>> {
            match sub(k) {
                Some(v) => match v.as_f64() {
                    Some(f) if f.is_finite() => Ok(Some(f)),
                    _ => Err(self.bad(&format!("rope_parameters.{k}"), "a finite number", v)),
                },
                None => self.opt_f64(top),
            }
        };
        let theta = num("rope_theta", &["rope_theta", "rotary_emb_base"])?;
        let rope_type = sub("rope_type")
            .or_else(|| sub("type"))
            .and_then(Json::as_str)
            .map(str::to_string);
        Ok(RopeConfig {
            theta,
            rope_type,
            factor: num("factor", &[])?,
            partial_rotary_factor: num("partial_rotary_factor", &["partial_rotary_factor"])?,
            original_max_position_embeddings: num(
                "original_max_position_embeddings",
                &["original_max_position_embeddings"],
            )?,
            low_freq_factor: num("low_freq_factor", &[])?,
            high_freq_factor: num("high_freq_factor", &[])?,
            extrapolation_factor: num("extrapolation_factor", &[])?,
            attention_factor: match num("attention_factor", &[])? {
                Some(f) => Some(f),
                None => num("attn_factor", &[])?,
            },
            beta_fast: num("beta_fast", &[])?,
            beta_slow: num("beta_slow", &[])?,
        })
    }
}

/// Rotary-embedding settings of a config, from `rope_parameters` or `rope_scaling` + top-level keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RopeConfig {
    pub theta: Option<f64>,
    /// "default", "linear", "yarn", "llama3", "dynamic", …
    pub rope_type: Option<String>,
    pub factor: Option<f64>,
    pub partial_rotary_factor: Option<f64>,
    pub original_max_position_embeddings: Option<f64>,
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    pub extrapolation_factor: Option<f64>,
    pub attention_factor: Option<f64>,
    pub beta_fast: Option<f64>,
    pub beta_slow: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> HfConfig {
        HfConfig::parse(PathBuf::from("config.json"), text).unwrap()
    }

    #[test]
    fn lookups() {
        let c = cfg(r#"{"a": 3, "b": 2.0, "c": null, "d": {"e": 1.5}, "f": "x", "g": -1}"#);
        assert_eq!(c.usize(&["a"]).unwrap(), 3);
        assert_eq!(c.usize(&["c", "b"]).unwrap(), 2);
        assert_eq!(c.opt_f64(&["d.e"]).unwrap(), Some(1.5));
        assert!(c
            .usize(&["c"])
            .unwrap_err()
            .message()
            .contains("missing `c`"));
        assert!(c
            .usize(&["f"])
            .unwrap_err()
            .message()
            .contains("`f` must be"));
        assert!(c.usize(&["g"]).is_err());
        assert_eq!(c.opt_usize(&["zz"]).unwrap(), None);
    }

    #[test]
    fn rope_in_both_places() {
        let v5 = cfg(
            r#"{"rope_parameters": {"rope_theta": 500000.0, "rope_type": "linear", "factor": 2.0}}"#,
        );
        let r = v5.rope().unwrap();
        assert_eq!(r.theta, Some(500000.0));
        assert_eq!(r.rope_type.as_deref(), Some("linear"));
        assert_eq!(r.factor, Some(2.0));
        let v4 = cfg(r#"{"rope_theta": 1000.0, "rope_scaling": {"type": "linear", "factor": 4}}"#);
        let r = v4.rope().unwrap();
        assert_eq!(r.theta, Some(1000.0));
        assert_eq!(r.rope_type.as_deref(), Some("linear"));
        assert_eq!(r.factor, Some(4.0));
        assert_eq!(cfg("{}").rope().unwrap(), RopeConfig::default());
    }
}
