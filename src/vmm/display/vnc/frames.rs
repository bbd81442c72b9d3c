//! The one rendered picture all clients of a server share. It is rendered
//! at most once per interval however many clients ask, and numbered by a
//! generation that changes only when the picture does.

use crate::vmm::display::{DisplaySource, Frame};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most ~60 renders a second.
pub const RENDER_INTERVAL: Duration = Duration::from_millis(16);

pub struct FrameCache {
    source: Arc<dyn DisplaySource>,
    state: Mutex<State>,
}

struct State {
    current: Arc<Frame>,
    generation: u64,
    rendered_at: Option<Instant>,
    /// A buffer to render into, recycled when no client holds it.
    scratch: Frame,
}

impl FrameCache {
    pub fn new(source: Arc<dyn DisplaySource>) -> FrameCache {
        FrameCache {
            source,
            state: Mutex::new(State {
                current: Arc::new(Frame::default()),
                generation: 0,
                rendered_at: None,
                scratch: Frame::default(),
            }),
        }
    }

    /// The newest picture and its generation, rendering first unless the
    /// last render is younger than [`RENDER_INTERVAL`].
    pub fn latest(&self) -> (u64, Arc<Frame>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = s.rendered_at.is_some_and(|t| t.elapsed() < RENDER_INTERVAL);
        if !fresh {
            let st = &mut *s;
            self.source.render(&mut st.scratch);
            // A source that got the length wrong must not make encoders index
            // past the end.
            let (w, h) = (st.scratch.width, st.scratch.height);
            st.scratch.resize(w, h);
            st.rendered_at = Some(Instant::now());
            if st.generation == 0 || st.scratch != *st.current {
                let new = Arc::new(std::mem::take(&mut st.scratch));
                let old = std::mem::replace(&mut st.current, new);
                st.scratch = Arc::try_unwrap(old).unwrap_or_default();
                st.generation += 1;
            }
        }
        (s.generation, s.current.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting {
        renders: AtomicU32,
        colour: AtomicU32,
    }

    impl DisplaySource for Counting {
        fn render(&self, frame: &mut Frame) {
            self.renders.fetch_add(1, Ordering::SeqCst);
            frame.resize(4, 2);
            frame.pixels.fill(self.colour.load(Ordering::SeqCst));
        }
    }

    #[test]
    fn renders_once_per_interval_and_bumps_generation_on_change() {
        let src = Arc::new(Counting {
            renders: AtomicU32::new(0),
            colour: AtomicU32::new(1),
        });
        let cache = FrameCache::new(src.clone());
        let (g1, f1) = cache.latest();
        let (g2, _) = cache.latest();
        assert_eq!((g1, g2), (1, 1));
        assert_eq!(src.renders.load(Ordering::SeqCst), 1);
        assert_eq!(f1.pixels, [1; 8]);
        std::thread::sleep(RENDER_INTERVAL * 2);
        assert_eq!(cache.latest().0, 1, "same picture, same generation");
        src.colour.store(2, Ordering::SeqCst);
        std::thread::sleep(RENDER_INTERVAL * 2);
        let (g3, f3) = cache.latest();
        assert_eq!(g3, 2);
        assert_eq!(f3.pixels, [2; 8]);
        assert_eq!(f1.pixels, [1; 8], "a held frame is never changed");
    }
}
