//! `debug`: systematic root-cause investigation driven by a hypothesis; the
//! expert checks the hypothesis against the evidence at the end.

use super::Kind;
use super::step::{Fields, Step};

pub struct Debug;

#[async_trait::async_trait]
impl Kind for Debug {
    fn name(&self) -> &'static str {
        "debug"
    }

    fn fields(&self) -> Fields {
        Fields {
            hypothesis: true,
            ..Fields::default()
        }
    }

    fn guidance(&self, step: &Step) -> &'static str {
        if step.step_number == 1 {
            "Reproduce or pin down the symptom, read the code on its path and collect evidence (logs, \
             stack traces, state); state a hypothesis."
        } else {
            "Test the hypothesis against the code: trace the failing path, rule alternatives in or out, \
             revise the hypothesis and confidence."
        }
    }

    fn final_action(&self) -> &'static str {
        "present the root cause with its evidence and the minimal fix; implement it only if the user \
         asked."
    }
}
