//! `<clock>`: guest clock offset and timers.

use crate::error::{Error, Result};
use crate::xml::props::{
    XmlEnum, enum_attr, opt_string, req_enum_attr, xml_enum, yes_no, yes_no_attr,
};
use crate::xml::tree::Element;

xml_enum! {
    ClockOffset { Utc = "utc", Localtime = "localtime", Variable = "variable", Timezone = "timezone", Absolute = "absolute" }
}

xml_enum! {
    TimerName {
        Platform = "platform", Pit = "pit", Rtc = "rtc", Hpet = "hpet", Tsc = "tsc",
        Kvmclock = "kvmclock", Hypervclock = "hypervclock", Armvtimer = "armvtimer",
    }
}

xml_enum! {
    TickPolicy { Delay = "delay", Catchup = "catchup", Merge = "merge", Discard = "discard" }
}

xml_enum! {
    TimerTrack { Boot = "boot", Guest = "guest", Wall = "wall", Realtime = "realtime" }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer {
    pub name: TimerName,
    pub present: Option<bool>,
    pub tickpolicy: Option<TickPolicy>,
    pub track: Option<TimerTrack>,
    pub frequency: Option<String>,
    pub mode: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clock {
    pub offset: ClockOffset,
    pub adjustment: Option<String>,
    pub basis: Option<String>,
    pub timezone: Option<String>,
    pub start: Option<String>,
    pub timers: Vec<Timer>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            offset: ClockOffset::Utc,
            adjustment: None,
            basis: None,
            timezone: None,
            start: None,
            timers: Vec::new(),
        }
    }
}

impl Clock {
    pub fn parse(clock: &Element) -> Result<Clock> {
        let offset = match clock.attr("offset") {
            None => ClockOffset::Utc,
            Some(o) => ClockOffset::from_xml(o)
                .ok_or_else(|| Error::unsupported(format!("unknown clock offset '{o}'")))?,
        };
        if offset == ClockOffset::Timezone && clock.attr("timezone").is_none_or(str::is_empty) {
            return Err(Error::internal(
                "missing 'timezone' attribute for clock with offset='timezone'",
            ));
        }
        let mut timers = Vec::new();
        for t in clock.children_named("timer") {
            timers.push(Timer {
                name: req_enum_attr(t, "name")?,
                present: yes_no_attr(t, "present")?,
                tickpolicy: enum_attr(t, "tickpolicy")?,
                track: enum_attr(t, "track")?,
                frequency: opt_string(t, "frequency"),
                mode: opt_string(t, "mode"),
            });
        }
        Ok(Clock {
            offset,
            adjustment: opt_string(clock, "adjustment"),
            basis: opt_string(clock, "basis"),
            timezone: opt_string(clock, "timezone"),
            start: opt_string(clock, "start"),
            timers,
        })
    }

    pub fn to_element(&self) -> Element {
        let mut e = Element::new("clock")
            .with_attr("offset", self.offset.as_str())
            .with_opt_attr("adjustment", self.adjustment.as_ref())
            .with_opt_attr("basis", self.basis.as_ref())
            .with_opt_attr("timezone", self.timezone.as_ref())
            .with_opt_attr("start", self.start.as_ref());
        for t in &self.timers {
            e.children.push(
                Element::new("timer")
                    .with_attr("name", t.name.as_str())
                    .with_opt_attr("present", t.present.map(yes_no))
                    .with_opt_attr("tickpolicy", t.tickpolicy)
                    .with_opt_attr("track", t.track)
                    .with_opt_attr("frequency", t.frequency.as_ref())
                    .with_opt_attr("mode", t.mode.as_ref()),
            );
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn round_trips_timers() {
        let e = parse_document(
            "<clock offset='variable' adjustment='3600' basis='utc'><timer name='rtc' tickpolicy='catchup' track='guest'/><timer name='hpet' present='no'/></clock>",
        )
        .unwrap();
        let c = Clock::parse(&e).unwrap();
        assert_eq!(Clock::parse(&c.to_element()).unwrap(), c);
        assert_eq!(
            c.to_element().children[1].attrs,
            [
                ("name".into(), "hpet".into()),
                ("present".into(), "no".into())
            ]
        );
    }

    #[test]
    fn rejects_unknown_offset_and_timer() {
        let e = parse_document("<clock offset='foo'/>").unwrap();
        assert_eq!(
            Clock::parse(&e).unwrap_err().message,
            "unsupported configuration: unknown clock offset 'foo'"
        );
        let e = parse_document("<clock><timer name='foo'/></clock>").unwrap();
        assert_eq!(
            Clock::parse(&e).unwrap_err().message,
            "XML error: Invalid value for attribute 'name' in element 'timer': 'foo'."
        );
    }
}
