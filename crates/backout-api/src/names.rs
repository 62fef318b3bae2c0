//! Schemas of the store's named states (`running`, `in_doubt`, …): the store spells each name
//! once (`text_enum!`, with `ALL` and `as_str`), and the schema lists exactly those names.

use backout_store::{
    AttemptOutcome, DeliveryKind, DeliveryState, ReleaseState, Role, RunKind, RunState, StepState,
};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

fn names<'a>(all: impl Iterator<Item = &'a str>, what: &str) -> RefOr<Schema> {
    let values: Vec<&str> = all.collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(what))
        .into()
}

macro_rules! schema_of_names {
    ($($fn:ident: $ty:ty, $what:literal;)+) => {
        $(
            #[doc = concat!("The schema of a ", $what, ": one of its names.")]
            pub fn $fn() -> RefOr<Schema> {
                names(<$ty>::ALL.iter().map(|v| v.as_str()), $what)
            }
        )+
    };
}

schema_of_names! {
    release_state: ReleaseState, "release state";
    run_kind: RunKind, "run kind";
    run_state: RunState, "run state";
    step_state: StepState, "step state";
    delivery_kind: DeliveryKind, "channel kind";
    delivery_state: DeliveryState, "delivery state";
    attempt_outcome: AttemptOutcome, "attempt outcome";
    role: Role, "token role";
}
