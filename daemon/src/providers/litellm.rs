//! LiteLLM's model map, compiled in: context windows, prices and capability flags of the
//! ~4.5k models LiteLLM knows, available offline.
//!
//! `daemon/data/litellm/models.tsv` is generated from LiteLLM's
//! `model_prices_and_context_window.json` by `scripts/gen-litellm-map.py` (see
//! `daemon/data/litellm/SOURCE.md`); it is parsed once, on first use.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::cost::{PriceTier, Prices};

const MODELS_TSV: &str = include_str!("../../data/litellm/models.tsv");

/// One model of LiteLLM's map (only the fields zend uses).
#[derive(Debug, Clone, PartialEq)]
pub struct LiteLlmEntry {
    pub provider: &'static str,
    pub mode: &'static str,
    pub max_input_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    /// `None` when the map has no per-token input and output price.
    pub prices: Option<Prices>,
    pub vision: bool,
    pub tools: bool,
    pub json_mode: bool,
    pub reasoning: bool,
    pub prompt_caching: bool,
    /// Which text endpoints the entry's `supported_endpoints` lists: `c` chat completions,
    /// `r` responses, `-` neither; empty when it lists none.
    pub endpoints: &'static str,
}

impl LiteLlmEntry {
    /// Served only by the Responses API: the entry lists `/v1/responses` and not
    /// `/v1/chat/completions`, or lists no endpoints and says `mode: responses`.
    pub fn responses_only(&self) -> bool {
        match self.endpoints {
            "" => self.mode == "responses",
            listed => listed.contains('r') && !listed.contains('c'),
        }
    }
}

/// Looks a key up exactly as LiteLLM spells it (`gpt-4o`, `gemini/gemini-2.5-pro`).
pub fn lookup(key: &str) -> Option<&'static LiteLlmEntry> {
    map().get(key)
}

/// Number of models in the compiled-in map.
pub fn len() -> usize {
    map().len()
}

fn map() -> &'static HashMap<&'static str, LiteLlmEntry> {
    static MAP: OnceLock<HashMap<&'static str, LiteLlmEntry>> = OnceLock::new();
    MAP.get_or_init(|| MODELS_TSV.lines().skip(1).filter_map(parse_row).collect())
}

fn parse_row(line: &'static str) -> Option<(&'static str, LiteLlmEntry)> {
    let cols: Vec<&'static str> = line.split('\t').collect();
    if cols.len() < 12 {
        return None;
    }
    let float = |s: &str| s.parse::<f64>().ok();
    let int = |s: &str| s.parse::<f64>().ok().map(|v| v as u64);
    let prices = match (float(cols[5]), float(cols[6])) {
        (Some(input), Some(output)) => Some(Prices {
            input,
            output,
            cache_read: float(cols[7]),
            cache_write: float(cols[8]),
            reasoning_output: float(cols[9]),
            tiers: cols[11]
                .split(';')
                .filter(|t| !t.is_empty())
                .filter_map(|t| {
                    let mut parts = t.split(':');
                    Some(PriceTier {
                        above_tokens: parts.next()?.parse().ok()?,
                        input: parts.next().and_then(float),
                        output: parts.next().and_then(float),
                        cache_read: parts.next().and_then(float),
                    })
                })
                .collect(),
        }),
        _ => None,
    };
    let flags = cols[10];
    Some((
        cols[0],
        LiteLlmEntry {
            provider: cols[1],
            mode: cols[2],
            max_input_tokens: int(cols[3]),
            max_output_tokens: int(cols[4]),
            prices,
            vision: flags.contains('v'),
            tools: flags.contains('t'),
            json_mode: flags.contains('j'),
            reasoning: flags.contains('r'),
            prompt_caching: flags.contains('c'),
            endpoints: cols.get(12).copied().unwrap_or(""),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_is_complete_and_skips_special_keys() {
        assert!(len() > 4500, "{}", len());
        assert!(lookup("sample_spec").is_none());
        assert!(lookup("fallback_generalizations").is_none());
    }

    #[test]
    fn known_rows() {
        let gpt4o = lookup("gpt-4o").unwrap();
        assert_eq!(gpt4o.provider, "openai");
        assert_eq!(gpt4o.max_input_tokens, Some(128_000));
        let prices = gpt4o.prices.as_ref().unwrap();
        assert_eq!(prices.input, 2.5e-6);
        assert_eq!(prices.cache_read, Some(1.25e-6));
        let pro = lookup("gemini/gemini-2.5-pro").unwrap();
        let tier = &pro.prices.as_ref().unwrap().tiers[0];
        assert_eq!((tier.above_tokens, tier.input), (200_000, Some(2.5e-6)));
        assert!(pro.reasoning && pro.vision);
    }

    #[test]
    fn responses_only_models_from_mode_and_endpoints() {
        for name in [
            "gpt-5-pro",
            "o3-pro",
            "o1-pro",
            "gpt-5-codex",
            "azure/gpt-5-pro",
        ] {
            assert!(lookup(name).unwrap().responses_only(), "{name}");
        }
        // Both endpoints listed: chat completions serves it.
        for name in ["gpt-5", "gpt-4o", "azure/gpt-5", "gpt-5-chat-latest"] {
            assert!(!lookup(name).unwrap().responses_only(), "{name}");
        }
        let marked = MODELS_TSV
            .lines()
            .skip(1)
            .filter(|l| l.split('\t').nth(2) == Some("responses"))
            .count();
        assert!(marked > 200, "{marked} entries marked mode: responses");
    }
}
