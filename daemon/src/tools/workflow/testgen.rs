//! `testgen`: works out what to test (paths, edge cases, failure modes) step by
//! step; the expert proposes the tests at the end.

use super::Kind;
use super::step::Step;

pub struct TestGen;

#[async_trait::async_trait]
impl Kind for TestGen {
    fn name(&self) -> &'static str {
        "testgen"
    }

    fn guidance(&self, step: &Step) -> &'static str {
        if step.step_number == 1 {
            "Read the code to test and its existing tests: note the framework, conventions, public \
             behaviour and critical paths."
        } else {
            "List edge cases and failure modes (boundaries, errors, concurrency, empty and huge \
             inputs) and which are untested."
        }
    }

    fn final_action(&self) -> &'static str {
        "write the tests in the project's framework and style, then run them."
    }
}
