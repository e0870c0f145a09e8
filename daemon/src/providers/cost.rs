//! Cost = tokens × per-token prices, as LiteLLM computes it.
//!
//! Cached input is billed at the cache-read price and cache writes at the cache-write
//! price; the rest of the input at the input price. When the prompt is above a tier's
//! threshold (LiteLLM's `*_above_200k_tokens` keys), that tier's prices apply to all
//! tokens of the call. Unknown prices give an unknown cost, never 0.

use serde::{Deserialize, Serialize};

use super::config::PricesConfig;
use super::types::{Cost, CostSource, Usage};

/// USD per token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
    pub reasoning_output: Option<f64>,
    pub tiers: Vec<PriceTier>,
}

/// Prices that apply when the prompt has more than `above_tokens` tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTier {
    pub above_tokens: u64,
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cache_read: Option<f64>,
}

const PER_MILLION: f64 = 1e-6;

impl Prices {
    /// Config prices (per million) over `base` (per token, from LiteLLM). `None` when
    /// neither gives both an input and an output price.
    pub fn merge(config: Option<&PricesConfig>, base: Option<&Prices>) -> Option<Prices> {
        let Some(config) = config else {
            return base.cloned();
        };
        let per_token = |v: Option<f64>| v.map(|v| v * PER_MILLION);
        let input = per_token(config.input).or(base.map(|b| b.input))?;
        let output = per_token(config.output).or(base.map(|b| b.output))?;
        Some(Prices {
            input,
            output,
            cache_read: per_token(config.cached_input).or(base.and_then(|b| b.cache_read)),
            cache_write: per_token(config.cache_write).or(base.and_then(|b| b.cache_write)),
            reasoning_output: per_token(config.reasoning_output)
                .or(base.and_then(|b| b.reasoning_output)),
            tiers: if config.tiers.is_empty() {
                base.map(|b| b.tiers.clone()).unwrap_or_default()
            } else {
                config
                    .tiers
                    .iter()
                    .map(|t| PriceTier {
                        above_tokens: t.above_tokens,
                        input: per_token(t.input),
                        output: per_token(t.output),
                        cache_read: per_token(t.cached_input),
                    })
                    .collect()
            },
        })
    }

    /// USD for `usage`.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let tier = self
            .tiers
            .iter()
            .filter(|t| usage.input_tokens > t.above_tokens)
            .max_by_key(|t| t.above_tokens);
        let input_price = tier.and_then(|t| t.input).unwrap_or(self.input);
        let output_price = tier.and_then(|t| t.output).unwrap_or(self.output);
        let cache_read_price = tier
            .and_then(|t| t.cache_read)
            .or(self.cache_read)
            .unwrap_or(input_price);
        let cache_write_price = self.cache_write.unwrap_or(input_price);

        let cached = usage.cached_tokens.min(usage.input_tokens);
        let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
        let plain_input = usage.input_tokens - cached - written;
        let (reasoning, plain_output) = match self.reasoning_output {
            Some(_) => {
                let r = usage.reasoning_tokens.min(usage.output_tokens);
                (r, usage.output_tokens - r)
            }
            None => (0, usage.output_tokens),
        };
        plain_input as f64 * input_price
            + cached as f64 * cache_read_price
            + written as f64 * cache_write_price
            + plain_output as f64 * output_price
            + reasoning as f64 * self.reasoning_output.unwrap_or(output_price)
    }

    /// Per million tokens, for listings.
    pub fn input_per_million(&self) -> f64 {
        self.input / PER_MILLION
    }

    pub fn output_per_million(&self) -> f64 {
        self.output / PER_MILLION
    }
}

/// What prompt caching saved on `usage`: its cost with every input token at the input
/// price, less its cost. Negative when cache writes (dearer than input) outweighed the
/// reads. `None` when the prices are unknown.
pub fn cache_savings(prices: Option<&Prices>, usage: &Usage) -> Option<f64> {
    let prices = prices?;
    if usage.cached_tokens == 0 && usage.cache_write_tokens == 0 {
        return Some(0.0);
    }
    let uncached = Usage {
        cached_tokens: 0,
        cache_write_tokens: 0,
        ..*usage
    };
    Some(prices.cost(&uncached) - prices.cost(usage))
}

/// The cost of `usage` with `prices`, or unknown.
pub fn compute(prices: Option<&Prices>, usage: &Usage) -> Cost {
    match prices {
        Some(p) => Cost {
            usd: Some(p.cost(usage)),
            source: CostSource::Computed,
        },
        None => Cost::UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::super::litellm;
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn usage(input: u64, output: u64, cached: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cached_tokens: cached,
            ..Usage::default()
        }
    }

    // Expected numbers are LiteLLM's: prompt × input_cost_per_token + completion ×
    // output_cost_per_token, cached tokens at cache_read_input_token_cost, and the
    // `_above_200k_tokens` prices for every token once the prompt is above 200k.
    #[test]
    fn cost_matches_litellm() {
        let gpt4o = litellm::lookup("gpt-4o").unwrap().prices.clone().unwrap();
        assert!(close(
            gpt4o.cost(&usage(1000, 500, 0)),
            1000.0 * 2.5e-6 + 500.0 * 1e-5
        ));
        assert!(close(
            gpt4o.cost(&usage(1000, 500, 400)),
            600.0 * 2.5e-6 + 400.0 * 1.25e-6 + 500.0 * 1e-5
        ));

        let sonnet = litellm::lookup("claude-sonnet-4-5")
            .unwrap()
            .prices
            .clone()
            .unwrap();
        let u = Usage {
            input_tokens: 10_000,
            output_tokens: 1_000,
            cached_tokens: 2_000,
            cache_write_tokens: 3_000,
            reasoning_tokens: 0,
        };
        assert!(close(
            sonnet.cost(&u),
            5_000.0 * 3e-6 + 2_000.0 * 3e-7 + 3_000.0 * 3.75e-6 + 1_000.0 * 1.5e-5
        ));

        let pro = litellm::lookup("gemini/gemini-2.5-pro")
            .unwrap()
            .prices
            .clone()
            .unwrap();
        assert!(close(
            pro.cost(&usage(100_000, 1_000, 0)),
            100_000.0 * 1.25e-6 + 1_000.0 * 1e-5
        ));
        assert!(close(
            pro.cost(&usage(250_000, 1_000, 50_000)),
            200_000.0 * 2.5e-6 + 50_000.0 * 2.5e-7 + 1_000.0 * 1.5e-5
        ));
    }

    #[test]
    fn cache_savings_are_the_uncached_cost_less_the_cost() {
        let sonnet = litellm::lookup("claude-sonnet-4-5")
            .unwrap()
            .prices
            .clone()
            .unwrap();
        let u = Usage {
            input_tokens: 10_000,
            output_tokens: 1_000,
            cached_tokens: 6_000,
            cache_write_tokens: 3_000,
            reasoning_tokens: 0,
        };
        let saved = cache_savings(Some(&sonnet), &u).unwrap();
        assert!(close(
            saved,
            6_000.0 * (3e-6 - 3e-7) - 3_000.0 * (3.75e-6 - 3e-6)
        ));
        // A first call that only writes the cache costs more than an uncached one.
        let first = Usage {
            cached_tokens: 0,
            ..u
        };
        assert!(cache_savings(Some(&sonnet), &first).unwrap() < 0.0);
        assert_eq!(cache_savings(Some(&sonnet), &usage(10, 1, 0)), Some(0.0));
        assert_eq!(cache_savings(None, &u), None);
    }

    #[test]
    fn config_prices_override_per_million() {
        let base = litellm::lookup("gpt-4o").unwrap().prices.clone();
        let config = PricesConfig {
            input: Some(1.0),
            ..PricesConfig::default()
        };
        let merged = Prices::merge(Some(&config), base.as_ref()).unwrap();
        assert!(close(merged.input, 1e-6));
        assert!(close(merged.output, 1e-5));
        assert_eq!(Prices::merge(Some(&config), None), None);
        assert_eq!(compute(None, &usage(1, 1, 0)), Cost::UNKNOWN);
    }
}
