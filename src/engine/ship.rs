//! `ship`: one image streamed from this engine into another, export to
//! load, through [`crate::delivery::SaveFilter`] so the layers the target
//! already has are not sent; nothing is written to the controller's disk.

use futures_util::StreamExt;

use super::delivery::{cause_text, DeliveryError, Result};
use super::Docker;
use crate::delivery::{self, LayerSeen, SaveFilter};
use bollard::query_parameters as q;

/// What a ship did.
#[derive(Debug, Clone)]
pub struct ShipReport {
    pub id: String,
    pub bytes_exported: u64,
    pub bytes_sent: u64,
    pub layers: Vec<LayerSeen>,
}

impl Docker {
    /// Streams `reference` from this engine into `target`: export, the
    /// layers the target has filtered out, load; then checks the target
    /// holds the same image id. `on` hears of each layer as it starts.
    pub async fn ship_to(
        &self,
        target: &Docker,
        reference: &str,
        mut on: impl FnMut(&LayerSeen, usize),
    ) -> Result<ShipReport> {
        let src = self
            .image_brief(reference)
            .await?
            .ok_or_else(|| DeliveryError::Missing(reference.into()))?;
        let have = target.layer_chains().await?;
        let skip = delivery::skippable(&src.diff_ids, &have);
        let total = src.diff_ids.len();
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let mut export = self.inner.export_image(reference);
        let mut filter = SaveFilter::new(src.diff_ids.clone(), skip);
        let pump = async {
            let mut out = Vec::with_capacity(1 << 16);
            let mut seen = 0;
            let res: std::result::Result<(), String> = async {
                while let Some(chunk) = export.next().await {
                    let chunk = chunk.map_err(|e| format!("export: {}", cause_text(e)))?;
                    filter.push(&chunk, &mut out).map_err(|e| e.to_string())?;
                    for l in &filter.layers[seen..] {
                        on(l, total);
                    }
                    seen = filter.layers.len();
                    if !out.is_empty() {
                        let b = bytes::Bytes::from(std::mem::take(&mut out));
                        tx.send(Ok(b))
                            .await
                            .map_err(|_| "load ended early".to_string())?;
                    }
                }
                filter.finish().map_err(|e| e.to_string())
            }
            .await;
            if let Err(why) = &res {
                // Cut the load's body: the target keeps nothing half-loaded.
                let _ = tx.send(Err(std::io::Error::other(why.clone()))).await;
            }
            drop(tx);
            res
        };
        let body =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|x| (x, rx)) },
            );
        let load = async {
            let opts = q::ImportImageOptions {
                quiet: true,
                ..Default::default()
            };
            let mut s = target.inner.import_image_stream(opts, body, None);
            while let Some(item) = s.next().await {
                item.map_err(|e| format!("load: {}", cause_text(e)))?;
            }
            Ok::<(), String>(())
        };
        let (pumped, loaded) = tokio::join!(pump, load);
        let fail = |why: String| DeliveryError::Ship {
            reference: reference.into(),
            why,
        };
        pumped.map_err(fail)?;
        loaded.map_err(fail)?;
        let got = target.image_brief(reference).await?;
        match got {
            Some(g) if g.id == src.id => Ok(ShipReport {
                id: g.id,
                bytes_exported: filter.bytes_in,
                bytes_sent: filter.bytes_out,
                layers: filter.layers,
            }),
            Some(g) => Err(fail(format!(
                "the target holds {} after the load, not {}",
                g.id, src.id
            ))),
            None => Err(fail("the target does not hold it after the load".into())),
        }
    }
}
