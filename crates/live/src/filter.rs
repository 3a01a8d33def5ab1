//! Turning a change set into a subscription's notifications: its filter
//! is evaluated on the old and on the new version of every row, so rows
//! that enter the filter arrive as inserts and rows that leave it as
//! deletes.

use arrow::array::{Array, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use datafusion::error::{DataFusionError, Result};

use crate::{ChangeSet, LivePlan, Outbound, Subscription};

/// How a change looks to one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Update,
    Delete,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

impl LivePlan {
    /// Which rows of `batch` (in the table's full schema) pass the filter;
    /// NULL does not.
    pub fn matches(&self, batch: &RecordBatch) -> Result<Vec<bool>> {
        let Some(filter) = &self.filter else {
            return Ok(vec![true; batch.num_rows()]);
        };
        let result = filter.evaluate(batch)?.into_array(batch.num_rows())?;
        let result = result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| DataFusionError::Plan("the WHERE clause is not a condition".into()))?;
        Ok((0..result.len())
            .map(|i| result.is_valid(i) && result.value(i))
            .collect())
    }
}

/// The notifications `changes` makes for `subscription`, considering only
/// `rows` when given (the rows an index found for it). Consecutive rows of
/// one kind share a message.
pub fn classify(
    subscription: &Subscription,
    changes: &ChangeSet,
    rows: Option<&[u32]>,
) -> Result<Vec<Outbound>> {
    let all: Vec<u32>;
    let rows = match rows {
        Some(rows) => rows,
        None => {
            all = (0..changes.seqs.len() as u32).collect();
            &all
        }
    };
    let subset = |batch: &RecordBatch| -> Result<RecordBatch> {
        if rows.len() == batch.num_rows() {
            return Ok(batch.clone());
        }
        Ok(take_record_batch(batch, &UInt32Array::from(rows.to_vec()))?)
    };
    let old_match = subscription.plan.matches(&subset(&changes.old)?)?;
    let new_match = subscription.plan.matches(&subset(&changes.new)?)?;
    let mut runs: Vec<(ChangeKind, Vec<u32>)> = Vec::new();
    for (position, &row) in rows.iter().enumerate() {
        let i = row as usize;
        if changes.seqs[i] <= subscription.start_seq {
            continue;
        }
        let was = changes.had_old[i] && old_match[position];
        let is = changes.has_new[i] && new_match[position];
        let kind = match (was, is) {
            (false, true) => ChangeKind::Insert,
            (true, true) => ChangeKind::Update,
            (true, false) => ChangeKind::Delete,
            (false, false) => continue,
        };
        match runs.last_mut() {
            Some((last, rows)) if *last == kind => rows.push(i as u32),
            _ => runs.push((kind, vec![i as u32])),
        }
    }
    let projection = &subscription.plan.projection;
    let mut out = Vec::with_capacity(runs.len());
    for (kind, rows) in runs {
        let last_seq = changes.seqs[*rows.last().expect("runs are not empty") as usize];
        let indices = UInt32Array::from(rows);
        let pick = |batch: &RecordBatch| -> Result<RecordBatch> {
            Ok(take_record_batch(&batch.project(projection)?, &indices)?)
        };
        let (rows, old_values) = match kind {
            ChangeKind::Insert => (Some(pick(&changes.new)?), None),
            ChangeKind::Update => (Some(pick(&changes.new)?), Some(pick(&changes.old)?)),
            ChangeKind::Delete => (None, Some(pick(&changes.old)?)),
        };
        out.push(Outbound::Change {
            subscription_id: subscription.subscription_id.clone(),
            live_id: subscription.live_id.clone(),
            last_seq,
            kind,
            rows,
            old_values,
        });
    }
    Ok(out)
}
