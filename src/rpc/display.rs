//! The guest's screen and keyboard: `virDomainScreenshot` (a reply with
//! the image's MIME type, then the image on the call's stream) and
//! `virDomainSendKey`. Semantics are the driver's.

use std::sync::Arc;

use uuid::Uuid;

use crate::driver::{DomainObj, Driver};
use crate::error::Result;

use super::codec::{args, void};
use super::dispatch::Outcome;
use super::generated::{self as g, procs};
use super::xdr::to_bytes;

/// Runs one of these procedures; `None` when `proc_` is not one.
pub async fn call(drv: &Driver, proc_: i32, p: &[u8]) -> Option<Result<Outcome>> {
    let dom = |d: &g::NonnullDomain| -> Result<Arc<DomainObj>> {
        drv.lookup_by_uuid(&Uuid::from_bytes(d.uuid))
    };
    let r = match proc_ {
        procs::DOMAIN_SCREENSHOT => {
            async {
                let a: g::DomainScreenshotArgs = args(p)?;
                let (file, mime) = drv.screenshot(&dom(&a.dom)?, a.screen, a.flags).await?;
                let ret = to_bytes(&g::DomainScreenshotRet {
                    mime: Some(mime.to_string()),
                });
                Ok(Outcome::Screenshot(ret, file))
            }
            .await
        }
        procs::DOMAIN_OPEN_GRAPHICS_FD => {
            async {
                let a: g::DomainOpenGraphicsFdArgs = args(p)?;
                let fd = drv.open_graphics_fd(&dom(&a.dom)?, a.idx, a.flags).await?;
                Ok(Outcome::ReplyWithFds(Vec::new(), vec![fd]))
            }
            .await
        }
        procs::DOMAIN_SEND_KEY => {
            async {
                let a: g::DomainSendKeyArgs = args(p)?;
                drv.send_key(&dom(&a.dom)?, a.codeset, a.holdtime, &a.keycodes, a.flags)
                    .await?;
                void()
            }
            .await
        }
        _ => return None,
    };
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::xdr::from_bytes;

    #[test]
    fn screenshot_reply_is_a_nullable_string() {
        let b = to_bytes(&g::DomainScreenshotRet {
            mime: Some("image/x-portable-pixmap".into()),
        });
        // Present flag, length, 23 bytes padded to 24.
        assert_eq!(&b[..8], &[0, 0, 0, 1, 0, 0, 0, 23]);
        assert_eq!(b.len(), 8 + 24);
        assert_eq!(&b[8..31], b"image/x-portable-pixmap");
    }

    #[test]
    fn send_key_arguments_keep_the_wire_limit() {
        let dom = g::NonnullDomain {
            name: "d".into(),
            uuid: [0; 16],
            id: -1,
        };
        let args = |n: usize| {
            to_bytes(&g::DomainSendKeyArgs {
                dom: dom.clone(),
                codeset: 0,
                holdtime: 0,
                keycodes: vec![30; n],
                flags: 0,
            })
        };
        let a: g::DomainSendKeyArgs = from_bytes(&args(16)).unwrap();
        assert_eq!(a.keycodes.len(), 16);
        assert!(from_bytes::<g::DomainSendKeyArgs>(&args(17)).is_err());
    }
}
