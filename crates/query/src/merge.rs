//! Scanning a table that has cold segments: the hot rows and the segments
//! as one input, conformed to the table's schema by [`MergeExec`].
//!
//! When no key can have versions in two places (segment key ranges are
//! disjoint and the hot rows' key range meets none of them, as with
//! append-mostly data), the input is a plain union and only delete
//! markers are dropped: no deduplication cost. Otherwise every input is
//! read in key order (`_key` ascending, `_seq` descending), merged into
//! one ordered stream, and the first version of each key wins.
//!
//! Filters go into the Parquet scans as pruning predicates (row groups,
//! pages, the key's bloom filter); with deduplication only filters on the
//! primary key do, since filtering out a newer version could resurrect an
//! older one. DataFusion applies every filter again above the scan.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue, Statistics};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, LexRequirement, OrderingRequirements, PhysicalExpr,
    PhysicalSortExpr, PhysicalSortRequirement,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PlanProperties, SendableRecordBatchStream, StatisticsArgs,
};
use futures::StreamExt;
use parquet::file::metadata::PageIndexPolicy;
use quiver_catalog::{SEQ_COLUMN, TableDef, arrow_type};
use quiver_store::{ColdTables, Manifest, Segment};

use crate::QueryError;
use crate::convert::value_to_scalar;
use quiver_store::{DELETED_COLUMN, KEY_COLUMN, segment_column};

/// The URL DataFusion reads segments through.
pub const COLD_URL: &str = "quiver-cold://segments";

/// The runtime every query runs in: segments are read from the cold
/// store under [`COLD_URL`], and a deleted segment's footer leaves the
/// metadata cache with it (otherwise every segment ever written would sit
/// there until evicted).
///
/// Operators' memory comes from one pool of `memory_bytes` for every
/// running query, shared fairly among those that can spill (sorts,
/// aggregates), which spill under `spill_dir` up to `spill_bytes`; an
/// operator that cannot get what it needs fails its query with
/// `ResourcesExhausted`, naming the largest consumers.
pub(crate) fn scan_runtime(
    cold: &ColdTables,
    memory_bytes: usize,
    spill_dir: std::path::PathBuf,
    spill_bytes: u64,
) -> Result<Arc<RuntimeEnv>, QueryError> {
    let pool = TrackConsumersPool::new(
        FairSpillPool::new(memory_bytes),
        NonZeroUsize::new(3).expect("3 is not 0"),
    );
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![spill_dir]))
                .with_max_temp_directory_size(spill_bytes),
        )
        .build_arc()
        .map_err(|e| QueryError::Internal(format!("building the query runtime: {e}")))?;
    let url = url::Url::parse(COLD_URL).expect("valid URL");
    runtime.register_object_store(&url, cold.cold().objects());
    let footers = runtime.cache_manager.get_file_metadata_cache();
    cold.cold().on_delete(Box::new(move |path| {
        footers.remove(&object_store::path::Path::from(path));
    }));
    Ok(runtime)
}

/// Whether some key may have versions in more than one place.
pub(crate) fn needs_merge(manifest: &Manifest, hot_range: Option<(&[u8], &[u8])>) -> bool {
    let mut ranges: Vec<(Vec<u8>, Vec<u8>)> =
        manifest.segments.iter().map(Segment::key_range).collect();
    if let Some((first, last)) = hot_range {
        ranges.push((first.to_vec(), last.to_vec()));
    }
    ranges.sort();
    ranges.windows(2).any(|w| w[1].0 <= w[0].1)
}

/// What the scan's inputs carry, in order: `_key` (when merging), the
/// needed table columns as `c<id>`, `_seq` (when merging or projected),
/// `_deleted` (when merging or when segments hold delete markers).
pub(crate) struct InputLayout {
    pub(crate) merge: bool,
    pub(crate) column_ids: Vec<u32>,
    pub(crate) schema: SchemaRef,
}

impl InputLayout {
    pub(crate) fn new(
        def: &TableDef,
        column_ids: Vec<u32>,
        merge: bool,
        seq: bool,
        deleted: bool,
    ) -> Self {
        let mut fields = Vec::new();
        if merge {
            fields.push(Field::new(KEY_COLUMN, DataType::Binary, false));
        }
        for id in &column_ids {
            let column = def
                .columns
                .iter()
                .find(|c| c.id == *id)
                .expect("needed columns are table columns");
            fields.push(Field::new(
                segment_column(*id),
                arrow_type(column.column_type),
                true,
            ));
        }
        if merge || seq {
            fields.push(Field::new(SEQ_COLUMN, DataType::Int64, false));
        }
        if merge || deleted {
            fields.push(Field::new(DELETED_COLUMN, DataType::Boolean, false));
        }
        Self {
            merge,
            column_ids,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    fn index(&self, name: &str) -> usize {
        self.schema.index_of(name).expect("layout column")
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.schema.index_of(name).is_ok()
    }

    /// `_key ASC, _seq DESC`: the order merging needs.
    pub(crate) fn merge_ordering(&self) -> LexOrdering {
        LexOrdering::new([
            PhysicalSortExpr::new_default(Arc::new(Column::new(
                KEY_COLUMN,
                self.index(KEY_COLUMN),
            )))
            .asc(),
            PhysicalSortExpr::new_default(Arc::new(Column::new(
                SEQ_COLUMN,
                self.index(SEQ_COLUMN),
            )))
            .desc(),
        ])
        .expect("non-empty ordering")
    }
}

/// Plans the Parquet side of a scan: one `DataSourceExec` per group of
/// segments with the same columns, projected to the input layout (columns
/// a segment predates read as their fill value).
pub(crate) async fn segment_scans(
    state: &dyn Session,
    def: &TableDef,
    layout: &InputLayout,
    manifest: &Manifest,
    filters: &[Expr],
) -> DfResult<Vec<Arc<dyn ExecutionPlan>>> {
    let mut groups: BTreeMap<Vec<u32>, Vec<&Segment>> = BTreeMap::new();
    for segment in &manifest.segments {
        let present: Vec<u32> = layout
            .column_ids
            .iter()
            .copied()
            .filter(|id| segment.columns.contains(id))
            .collect();
        groups.entry(present).or_default().push(segment);
    }
    let url = ObjectStoreUrl::parse(COLD_URL)?;
    // Footers and page indexes are parsed once per segment and kept in
    // the session's file metadata cache, as DataFusion's own Parquet
    // tables do; a large segment's page index costs milliseconds to read
    // and parse.
    let runtime = state.runtime_env();
    let store = runtime.object_store(&url)?;
    let footers = runtime.cache_manager.get_file_metadata_cache();
    let readers = Arc::new(CachedParquetFileReaderFactory::new(
        store.clone(),
        footers.clone(),
    ));
    let mut plans = Vec::new();
    for (present, segments) in groups {
        let mut fields = Vec::new();
        if layout.merge {
            fields.push(Field::new(KEY_COLUMN, DataType::Binary, false));
        }
        for id in &present {
            fields.push(layout.schema.field_with_name(&segment_column(*id))?.clone());
        }
        for system in [SEQ_COLUMN, DELETED_COLUMN] {
            if let Ok(field) = layout.schema.field_with_name(system) {
                fields.push(field.clone());
            }
        }
        let file_schema = Arc::new(Schema::new(fields));

        let mut source = ParquetSource::new(file_schema.clone())
            .with_enable_page_index(true)
            .with_bloom_filter_on_read(true)
            .with_parquet_file_reader_factory(readers.clone());
        if let Some(predicate) = pruning_predicate(state, def, layout, &file_schema, filters)? {
            source = source.with_predicate(predicate);
        }
        let files: Vec<PartitionedFile> = segments
            .iter()
            .map(|s| {
                let mut file = PartitionedFile::new(s.path.clone(), s.bytes);
                // The cache checks size and modification time; a path can
                // name a new file after its scope was emptied, and the
                // largest `_seq` tells the two apart.
                file.object_meta.last_modified = chrono::DateTime::from_timestamp_nanos(s.max_seq);
                file
            })
            .collect();
        // The scan asks for the footer alone and then reads the page index
        // without caching it; a footer cached with its page index is used
        // whole. So each segment's goes into the cache once, here.
        for file in &files {
            DFParquetMetadata::new(store.as_ref(), &file.object_meta)
                .with_file_metadata_cache(Some(footers.clone()))
                .with_page_index_policy(Some(PageIndexPolicy::Optional))
                .fetch_metadata()
                .await?;
        }
        let mut config = FileScanConfigBuilder::new(url.clone(), Arc::new(source));
        if layout.merge {
            // One file per partition, each in key order.
            let ordering = LexOrdering::new([
                PhysicalSortExpr::new_default(Arc::new(Column::new(KEY_COLUMN, 0))).asc(),
                PhysicalSortExpr::new_default(Arc::new(Column::new(
                    SEQ_COLUMN,
                    file_schema.index_of(SEQ_COLUMN)?,
                )))
                .desc(),
            ])
            .expect("non-empty ordering");
            config = config
                .with_file_groups(files.into_iter().map(|f| FileGroup::new(vec![f])).collect())
                .with_output_ordering(vec![ordering]);
        } else {
            config = config.with_file_group(FileGroup::new(files));
        }
        let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config.build());

        let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
        for field in layout.schema.fields() {
            let name = field.name();
            let expr: Arc<dyn PhysicalExpr> = match file_schema.index_of(name) {
                Ok(index) => Arc::new(Column::new(name, index)),
                Err(_) => {
                    let id: u32 = name[1..].parse().expect("c<id> column");
                    let column = def.columns.iter().find(|c| c.id == id).expect("column");
                    let fill = match &column.fill {
                        Some(value) => value_to_scalar(value, column)?,
                        None => ScalarValue::try_from(field.data_type())?,
                    };
                    Arc::new(Literal::new(fill))
                }
            };
            exprs.push((expr, name.clone()));
        }
        plans.push(Arc::new(ProjectionExec::try_new(exprs, scan)?) as Arc<dyn ExecutionPlan>);
    }
    Ok(plans)
}

/// The filters that may prune a segment group, as one predicate over its
/// file schema: table column names become `c<id>`; a filter naming a
/// column the group lacks is left out, and when merging, so is any filter
/// on something other than the primary key.
fn pruning_predicate(
    state: &dyn Session,
    def: &TableDef,
    layout: &InputLayout,
    file_schema: &SchemaRef,
    filters: &[Expr],
) -> DfResult<Option<Arc<dyn PhysicalExpr>>> {
    let pk = def.primary_key_column().map(|c| c.name.as_str());
    let mut usable = Vec::new();
    'filters: for filter in filters {
        for column in filter.column_refs() {
            let allowed = match (layout.merge, pk) {
                (true, Some(pk)) => column.name == pk,
                (true, None) => false,
                (false, _) => true,
            };
            if !allowed {
                continue 'filters;
            }
            let renamed = def
                .column(&column.name)
                .map(|c| segment_column(c.id))
                .unwrap_or_else(|| column.name.clone());
            if file_schema.index_of(&renamed).is_err() {
                continue 'filters;
            }
        }
        let rewritten = filter
            .clone()
            .transform(|expr| {
                Ok(match expr {
                    Expr::Column(column) => match def.column(&column.name) {
                        Some(c) => Transformed::yes(Expr::Column(
                            datafusion::common::Column::from_name(segment_column(c.id)),
                        )),
                        None => Transformed::no(Expr::Column(column)),
                    },
                    other => Transformed::no(other),
                })
            })?
            .data;
        usable.push(rewritten);
    }
    let Some(predicate) = conjunction(usable) else {
        return Ok(None);
    };
    let df_schema = DFSchema::try_from(file_schema.as_ref().clone())?;
    state.create_physical_expr(predicate, &df_schema).map(Some)
}

/// Conforms the scan input to the table's projected schema: drops delete
/// markers and, in merge mode, every version but the newest of each key.
#[derive(Debug)]
pub(crate) struct MergeExec {
    input: Arc<dyn ExecutionPlan>,
    merge: Option<LexOrdering>,
    /// Input column of each output column.
    outputs: Vec<usize>,
    key: Option<usize>,
    deleted: Option<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// Keeps the manifest the scan planned with alive until it is done.
    manifest: Arc<Manifest>,
    /// The exact row count, when the manifest alone tells it (no hot
    /// rows, no delete markers, no overlap).
    exact_rows: Option<usize>,
}

impl MergeExec {
    pub(crate) fn new(
        input: Arc<dyn ExecutionPlan>,
        layout: &InputLayout,
        outputs: Vec<usize>,
        schema: SchemaRef,
        manifest: Arc<Manifest>,
        exact_rows: Option<usize>,
    ) -> Self {
        let partitioning = if layout.merge {
            Partitioning::UnknownPartitioning(1)
        } else {
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count())
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            partitioning,
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            merge: layout.merge.then(|| layout.merge_ordering()),
            key: layout.merge.then(|| layout.index(KEY_COLUMN)),
            deleted: layout.schema.index_of(DELETED_COLUMN).ok(),
            input,
            outputs,
            schema,
            properties: Arc::new(properties),
            manifest,
            exact_rows,
        }
    }
}

impl DisplayAs for MergeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.merge.is_some() {
            "newest version per key"
        } else {
            "union, no overlap"
        };
        write!(
            f,
            "QuiverMergeExec: {mode}, segments={}",
            self.manifest.segments.len()
        )
    }
}

#[allow(deprecated)]
impl ExecutionPlan for MergeExec {
    fn name(&self) -> &str {
        "QuiverMergeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        if self.merge.is_some() {
            vec![Distribution::SinglePartition]
        } else {
            vec![Distribution::UnspecifiedDistribution]
        }
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![self.merge.as_ref().map(|ordering| {
            let requirement = LexRequirement::new(
                ordering
                    .iter()
                    .map(|e| PhysicalSortRequirement::from(e.clone())),
            )
            .expect("non-empty ordering");
            OrderingRequirements::new(requirement)
        })]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        // Output columns are renamed and reordered; no input ordering
        // carries over as stated.
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![self.merge.is_none()]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "QuiverMergeExec has one input".into(),
            ));
        }
        let input = children.remove(0);
        let partitioning = if self.merge.is_some() {
            Partitioning::UnknownPartitioning(1)
        } else {
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count())
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(self.schema.clone()),
            partitioning,
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(Self {
            input,
            merge: self.merge.clone(),
            outputs: self.outputs.clone(),
            key: self.key,
            deleted: self.deleted,
            schema: self.schema.clone(),
            properties: Arc::new(properties),
            manifest: self.manifest.clone(),
            exact_rows: self.exact_rows,
        }))
    }

    fn with_new_children_and_same_properties(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.with_new_children(children)
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        let mut statistics = Statistics::new_unknown(&self.schema);
        if let (None, Some(rows)) = (args.partition(), self.exact_rows) {
            statistics.num_rows = Precision::Exact(rows);
        }
        Ok(Arc::new(statistics))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let mut state = MergeState {
            key: self.key,
            deleted: self.deleted,
            outputs: self.outputs.clone(),
            schema: self.schema.clone(),
            last_key: None,
            _manifest: self.manifest.clone(),
        };
        let stream = input.filter_map(move |batch| {
            let out = batch.and_then(|b| state.next(&b)).transpose();
            futures::future::ready(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

struct MergeState {
    key: Option<usize>,
    deleted: Option<usize>,
    outputs: Vec<usize>,
    schema: SchemaRef,
    /// The key of the previous row, across batches.
    last_key: Option<Vec<u8>>,
    _manifest: Arc<Manifest>,
}

impl MergeState {
    /// The live, newest rows of `batch`, in the output shape; `None` when
    /// none are left.
    fn next(&mut self, batch: &RecordBatch) -> DfResult<Option<RecordBatch>> {
        let Some(deleted) = self.deleted else {
            // Nothing to drop: only the columns are rearranged.
            return self.output(batch).map(Some);
        };
        let deleted = batch
            .column(deleted)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| DataFusionError::Internal("_deleted is not boolean".into()))?;
        let keep: BooleanArray = match self.key {
            None => deleted.iter().map(|d| Some(d != Some(true))).collect(),
            Some(key) => {
                let keys = batch
                    .column(key)
                    .as_any()
                    .downcast_ref::<BinaryArray>()
                    .ok_or_else(|| DataFusionError::Internal("_key is not binary".into()))?;
                let mut keep = Vec::with_capacity(batch.num_rows());
                for i in 0..batch.num_rows() {
                    let key = keys.value(i);
                    let newest = self.last_key.as_deref() != Some(key);
                    if newest {
                        self.last_key = Some(key.to_vec());
                    }
                    keep.push(Some(newest && !deleted.value(i)));
                }
                keep.into_iter().collect()
            }
        };
        let kept = filter_record_batch(batch, &keep)?;
        if kept.num_rows() == 0 {
            return Ok(None);
        }
        self.output(&kept).map(Some)
    }

    /// `batch` in the output shape.
    fn output(&self, batch: &RecordBatch) -> DfResult<RecordBatch> {
        let columns: Vec<ArrayRef> = self
            .outputs
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let options = datafusion::arrow::array::RecordBatchOptions::new()
            .with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }
}
