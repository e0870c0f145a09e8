//! `secaudit`: a step-by-step security audit (OWASP Top 10, compliance,
//! infrastructure, dependencies) ending with the expert's assessment.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Kind;
use super::step::{Fields, Step, one_of};
use crate::tools::{ToolError, args};

pub struct SecAudit;

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ThreatLevel {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum AuditFocus {
    Owasp,
    Compliance,
    Infrastructure,
    Dependencies,
    Comprehensive,
}

#[derive(Deserialize)]
#[expect(
    dead_code,
    reason = "parsed to check the values; the run keeps the raw fields"
)]
struct Own {
    threat_level: Option<ThreatLevel>,
    compliance_requirements: Option<Vec<String>>,
    audit_focus: Option<AuditFocus>,
}

#[async_trait::async_trait]
impl Kind for SecAudit {
    fn name(&self) -> &'static str {
        "secaudit"
    }

    fn fields(&self) -> Fields {
        Fields {
            issues: true,
            ..Fields::default()
        }
    }

    fn own_schema(&self) -> Vec<(&'static str, Value)> {
        vec![
            (
                "threat_level",
                one_of(&["low", "medium", "high", "critical"]),
            ),
            (
                "compliance_requirements",
                json!({"type": "array", "items": {"type": "string"}}),
            ),
            (
                "audit_focus",
                one_of(&[
                    "owasp",
                    "compliance",
                    "infrastructure",
                    "dependencies",
                    "comprehensive",
                ]),
            ),
        ]
    }

    fn check(&self, own: &Map<String, Value>, _step: &Step) -> Result<(), ToolError> {
        args::parse::<Own>(own).map(drop)
    }

    fn guidance(&self, step: &Step) -> &'static str {
        if step.step_number == 1 {
            "Map the attack surface: entry points, trust boundaries, authentication, secrets, data \
             stores and dependencies."
        } else {
            "Check the next area (injection, auth, access control, crypto, input validation, \
             configuration, dependencies); add each vulnerability to issues_found with severity."
        }
    }

    fn final_action(&self) -> &'static str {
        "present the audit: vulnerabilities by severity with exploit scenario and remediation."
    }
}
