//! A core-local, one-shot signal: many tasks wait, one fires. Used for shutdown and for telling a
//! connection task to close.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default, Clone)]
pub struct LocalSignal {
    inner: Rc<RefCell<SignalState>>,
}

#[derive(Debug, Default)]
struct SignalState {
    fired: bool,
    wakers: Vec<Waker>,
}

impl LocalSignal {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fire(&self) {
        let wakers = {
            let mut s = self.inner.borrow_mut();
            s.fired = true;
            std::mem::take(&mut s.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    pub fn is_fired(&self) -> bool {
        self.inner.borrow().fired
    }

    /// Resolves once the signal has fired (at once if it already has).
    pub fn wait(&self) -> impl Future<Output = ()> {
        Wait {
            inner: self.inner.clone(),
        }
    }
}

struct Wait {
    inner: Rc<RefCell<SignalState>>,
}

impl Future for Wait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.inner.borrow_mut();
        if s.fired {
            return Poll::Ready(());
        }
        if !s.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            s.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
