//! Scalar functions whose output size the caller chooses (`repeat`,
//! `lpad`, `rpad`) refuse to make more than [`MAX_GENERATED_BYTES`] of text
//! at once, before allocating it: `repeat('x', 1000000000)` is an error,
//! not a gigabyte of memory (copied again by every planning step that
//! folds the constant).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::execution::{FunctionRegistry, SessionState};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

/// Most bytes of text one call of a generating function may make for a
/// batch of rows.
pub const MAX_GENERATED_BYTES: usize = 256 * 1024 * 1024;

/// The functions bounded, with the argument that sets the size: for
/// `repeat` a count of copies, for the pads a length in characters.
const BOUNDED: [&str; 3] = ["repeat", "lpad", "rpad"];

/// Replaces the session's `repeat`, `lpad` and `rpad` with bounded ones.
pub(crate) fn bound_generators(state: &mut SessionState) -> Result<()> {
    for name in BOUNDED {
        if let Some(inner) = state.scalar_functions().get(name).cloned() {
            let bounded = ScalarUDF::new_from_impl(Bounded { inner });
            state.register_udf(Arc::new(bounded))?;
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
}

impl Bounded {
    /// At least how many bytes the call makes.
    fn output_bytes(&self, args: &ScalarFunctionArgs) -> usize {
        let rows = args.number_rows.max(1);
        let sizes = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(n)))) => {
                vec![(*n).max(0) as usize; 1]
            }
            Some(ColumnarValue::Array(array)) if array.data_type() == &DataType::Int64 => array
                .as_primitive::<Int64Type>()
                .iter()
                .map(|n| n.unwrap_or(0).max(0) as usize)
                .collect(),
            _ => return 0,
        };
        let per_row = |i: usize| sizes.get(i).or(sizes.first()).copied().unwrap_or(0);
        if self.inner.name() != "repeat" {
            return (0..rows).map(per_row).fold(0, usize::saturating_add);
        }
        let text_len = |i: usize| match args.args.first() {
            Some(ColumnarValue::Scalar(s)) => scalar_len(s),
            Some(ColumnarValue::Array(array)) => text_len_at(array.as_ref(), i),
            None => 0,
        };
        (0..rows)
            .map(|i| text_len(i).saturating_mul(per_row(i)))
            .fold(0, usize::saturating_add)
    }
}

fn scalar_len(value: &ScalarValue) -> usize {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => s.len(),
        _ => 0,
    }
}

fn text_len_at(array: &dyn Array, i: usize) -> usize {
    if i >= array.len() || array.is_null(i) {
        return 0;
    }
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(i).len(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(i).len(),
        DataType::Utf8View => array.as_string_view().value(i).len(),
        _ => 0,
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = self.output_bytes(&args);
        if bytes > MAX_GENERATED_BYTES {
            return exec_err!(
                "{}() would make {bytes} bytes of text, more than the {} MiB one call may make",
                self.inner.name(),
                MAX_GENERATED_BYTES / (1024 * 1024)
            );
        }
        self.inner.invoke_with_args(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}
