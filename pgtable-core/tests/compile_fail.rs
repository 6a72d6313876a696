//! The refusals the type system makes: each file under `tests/ui/` must fail to compile
//! with exactly the error recorded next to it (regenerate with `TRYBUILD=overwrite`).

#[test]
fn type_level_refusals() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
