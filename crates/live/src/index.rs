//! Each table's subscriptions, with an index on the column value an
//! equality filter requires (`WHERE room = 'main'`): a change is checked
//! against the subscriptions its old or new values point to, and against
//! those without such a filter, never against all of them.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::scalar::ScalarValue;

use crate::{ChangeSet, Subscription};

/// A value a subscription's filter requires of one column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EqualityKey {
    /// Index into the table's full schema.
    pub column: usize,
    pub value: ScalarValue,
}

/// The subscriptions of one table.
#[derive(Debug, Default)]
pub(crate) struct TableSubscriptions {
    /// Without an equality key: checked against every change.
    scan: Vec<Arc<Subscription>>,
    /// By column, then by the value the filter requires.
    by_value: HashMap<usize, HashMap<ScalarValue, Vec<Arc<Subscription>>>>,
    count: usize,
}

impl TableSubscriptions {
    pub(crate) fn insert(&mut self, subscription: Arc<Subscription>) {
        self.count += 1;
        match &subscription.plan.key {
            None => self.scan.push(subscription),
            Some(key) => self
                .by_value
                .entry(key.column)
                .or_default()
                .entry(key.value.clone())
                .or_default()
                .push(subscription),
        }
    }

    pub(crate) fn remove(&mut self, subscription: &Arc<Subscription>) {
        let list = match &subscription.plan.key {
            None => Some(&mut self.scan),
            Some(key) => self
                .by_value
                .get_mut(&key.column)
                .and_then(|values| values.get_mut(&key.value)),
        };
        let Some(list) = list else {
            return;
        };
        let before = list.len();
        list.retain(|s| !Arc::ptr_eq(s, subscription));
        self.count -= before - list.len();
        if let Some(key) = &subscription.plan.key
            && let Some(values) = self.by_value.get_mut(&key.column)
        {
            values.retain(|_, list| !list.is_empty());
            if values.is_empty() {
                self.by_value.remove(&key.column);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn all(&self) -> Vec<Arc<Subscription>> {
        let mut all = self.scan.clone();
        for values in self.by_value.values() {
            for list in values.values() {
                all.extend(list.iter().cloned());
            }
        }
        all
    }

    /// The subscriptions a change set may concern, each with the rows
    /// that concern it: those the values of its rows (old or new) point
    /// to, with those rows, and those without a key, with every row
    /// (`None`).
    pub(crate) fn candidates(
        &self,
        changes: &ChangeSet,
    ) -> Vec<(Arc<Subscription>, Option<Vec<u32>>)> {
        let mut out: Vec<(Arc<Subscription>, Option<Vec<u32>>)> =
            self.scan.iter().map(|s| (s.clone(), None)).collect();
        let mut keyed: HashMap<*const Subscription, usize> = HashMap::new();
        for (column, values) in &self.by_value {
            let sides = [
                (&changes.old, &changes.had_old),
                (&changes.new, &changes.has_new),
            ];
            for (batch, real) in sides {
                let Some(array) = batch.columns().get(*column) else {
                    continue;
                };
                for (row, _) in real.iter().enumerate().filter(|(_, real)| **real) {
                    let Ok(value) = ScalarValue::try_from_array(array, row) else {
                        continue;
                    };
                    for subscription in values.get(&value).into_iter().flatten() {
                        let slot = *keyed.entry(Arc::as_ptr(subscription)).or_insert_with(|| {
                            out.push((subscription.clone(), Some(Vec::new())));
                            out.len() - 1
                        });
                        if let Some(rows) = &mut out[slot].1 {
                            rows.push(row as u32);
                        }
                    }
                }
            }
        }
        for (_, rows) in &mut out {
            if let Some(rows) = rows {
                rows.sort_unstable();
                rows.dedup();
            }
        }
        out
    }
}
