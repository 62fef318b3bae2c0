//! The JSON Schema of plan format v1, for editor completion and validation.

use crate::spec::PlanSpec;

/// Where the schema is published; plans reference it in a `yaml-language-server` comment.
pub const SCHEMA_ID: &str = "https://backout.dev/schema/plan-v1.json";

/// The JSON Schema (draft 2020-12) of a plan, generated from the same declarations the parser
/// uses.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(PlanSpec);
    schema.insert("$id".into(), SCHEMA_ID.into());
    schema.insert("title".into(), "backout plan (format v1)".into());
    schema.to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_lists_every_section_and_forbids_unknown_fields() {
        let schema = json_schema();
        let props = schema["properties"].as_object().unwrap();
        for key in [
            "version",
            "release",
            "criteria",
            "window",
            "authorization",
            "execution",
            "procedure",
            "contingency",
            "workarounds",
            "expected_duration",
            "communication",
            "testing",
        ] {
            assert!(props.contains_key(key), "schema lacks {key}");
        }
        assert_eq!(schema["additionalProperties"], false);
        let step = &schema["$defs"]["StepSpec"];
        assert!(
            step["properties"]
                .as_object()
                .unwrap()
                .contains_key("when_checkpoint")
        );
        let wait = &schema["$defs"]["WaitSpec"]["properties"];
        assert!(
            wait.as_object().unwrap().contains_key("for"),
            "raw identifiers keep their YAML name: {wait}"
        );
    }
}
