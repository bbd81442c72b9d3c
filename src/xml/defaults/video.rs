//! Video adapter defaults: model, memory sizes, heads and the primary
//! flag, with the values libvirt fills.

use crate::xml::model::Domain;
use crate::xml::model::display::{Video, VideoModel};

/// VRAM in KiB libvirt gives a model that has a framebuffer size.
fn default_vram(model: VideoModel) -> Option<u32> {
    match model {
        VideoModel::Vga
        | VideoModel::Cirrus
        | VideoModel::Vmvga
        | VideoModel::Bochs
        | VideoModel::Xen => Some(16384),
        VideoModel::Qxl => Some(65536),
        _ => None,
    }
}

pub fn fill(dom: &mut Domain) {
    // A screen needs an adapter: libvirt adds one for graphics without.
    if !dom.devices.graphics.is_empty() && dom.devices.videos.is_empty() {
        dom.devices.videos.push(Video {
            model: None,
            ram: None,
            vram: None,
            vgamem: None,
            heads: None,
            primary: None,
            alias: None,
            address: None,
        });
    }
    for (i, v) in dom.devices.videos.iter_mut().enumerate() {
        // libvirt's default for x86 is Cirrus when the emulator has it,
        // else the standard VGA; oxvirt's machine has no Cirrus adapter.
        let model = *v.model.get_or_insert(VideoModel::Vga);
        if model == VideoModel::None {
            continue;
        }
        if v.vram.is_none() {
            v.vram = default_vram(model);
        }
        if model == VideoModel::Qxl {
            v.ram.get_or_insert(65536);
            v.vgamem.get_or_insert(16384);
        }
        v.heads.get_or_insert(1);
        if i == 0 {
            v.primary.get_or_insert(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::xml::model::display::VideoModel;
    use crate::xml::parse_domain;

    #[test]
    fn fills_model_sizes_heads_and_primary() {
        let d = parse_domain(
            "<domain type='kvm'><name>v</name><memory>65536</memory><os><type>hvm</type></os>\
             <devices><video/><video><model type='qxl'/></video></devices></domain>",
        )
        .unwrap();
        let v = &d.devices.videos;
        assert_eq!(
            (v[0].model, v[0].vram, v[0].heads, v[0].primary),
            (Some(VideoModel::Vga), Some(16384), Some(1), Some(true))
        );
        assert_eq!(
            (v[1].ram, v[1].vram, v[1].vgamem, v[1].primary),
            (Some(65536), Some(65536), Some(16384), None)
        );
    }
}
