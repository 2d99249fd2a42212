//! Deterministic sample session states: a fixture for benchmarks and tests, not product code.
//!
//! [`game_state`] builds a document shaped like a real session state (`game_state`,
//! `npcs`, `player`, `rng`, `world`, `adventure`, `memory.warm.pins[]`, `memory.episodic[]`,
//! `hot.objectives[]`) whose canonical (RFC 8785) size is close to a requested number of bytes,
//! and [`next_turn`] applies the small change one turn of play makes (a few hundred bytes), so
//! a chain of hundreds of turns can be produced from one seed. A generated state is already
//! some turns into its story: continue with `next_turn(&mut s, turn_of(&s) + 1, seed)`.
//!
//! Everything comes from a tiny self-contained PRNG (splitmix64): the same arguments give the
//! same bytes on every machine and every build. Every number is an integer or a decimal with at
//! most two digits (`12.5`, `0.35`), so it canonicalizes exactly.
//!
//! Size: the state grows by whole NPCs (with their dialogue and inventories), locations,
//! episodic memories, pins, objectives and quests in a fixed mix until its canonical size
//! reaches the target, so it lands within about one NPC (well under 1 KB) of `target_bytes`.
//! A target smaller than the fixed skeleton (about 2.5 KB) gives the skeleton.
//!
//! Turns keep the size roughly steady: episodic memory is compacted (the oldest
//! [`EPISODIC_COMPACTION`] entries dropped and summarized into one warm pin) once it holds
//! [`EPISODIC_COMPACTION`] more entries than two per NPC, the warm pins and the player's
//! inventory are bounded too, and NPCs are never added or removed.

use awf_core::json::Map;
use serde_json::{json, Value};

/// How many of the oldest episodic memories one compaction drops (see the module docs).
pub const EPISODIC_COMPACTION: usize = 8;

/// Episodic memories per NPC that the generator creates and compaction keeps at least.
const EPISODIC_PER_NPC: usize = 2;

/// Most items the player carries before turns start dropping them.
const MAX_PLAYER_ITEMS: usize = 12;

/// A deterministic session state whose canonical size is close to `target_bytes`.
///
/// Different seeds give different names, numbers and texts of about the same size.
pub fn game_state(target_bytes: usize, seed: u64) -> Value {
    let mut g = Builder::new(seed);
    g.skeleton();
    // One round adds, in this order, what one more NPC brings to a world of this kind; it
    // stops at the first element that reaches the target, so the overshoot is at most one
    // element.
    let mut round = 0usize;
    while g.size < target_bytes {
        let steps: [(bool, Step); 6] = [
            (round.is_multiple_of(2), Step::Location),
            (true, Step::Npc),
            (true, Step::Episodic),
            (true, Step::Episodic),
            (round.is_multiple_of(3), Step::Pin),
            (round.is_multiple_of(4), Step::Objective),
        ];
        for (wanted, step) in steps {
            if wanted && g.size < target_bytes {
                g.add(step);
            }
        }
        if round % 6 == 5 && g.size < target_bytes {
            g.add(Step::Quest);
        }
        round += 1;
    }
    g.close();
    g.finish()
}

/// The turn a state is at (`game_state.turn`, 0 when absent): continue a chain with
/// `next_turn(&mut state, turn_of(&state) + 1, seed)`.
///
/// A state from [`game_state`] is already some turns into its story (its memories carry turn
/// numbers), about one turn per element of history, so larger states are at later turns.
pub fn turn_of(state: &Value) -> i64 {
    state
        .pointer("/game_state/turn")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Applies one turn of play to a state made by [`game_state`] (or by earlier turns).
///
/// The change is small and realistic: the turn counter and time of day, the RNG counter, the
/// player's hp, gold and position, one NPC moving, an episodic memory appended, and now and then
/// an inventory item gained or lost, an NPC's mood, an objective's status, a world flag or a
/// warm pin. `turn` is the number of the turn being applied; the change depends only on `seed`,
/// `turn` and the state, so two devices applying turn `t` with different seeds diverge the way
/// two real devices would. Sections missing from `state` are skipped, never created.
pub fn next_turn(state: &mut Value, turn: i64, seed: u64) {
    let mut r = Rng::new(seed ^ (turn as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let location_ids: Vec<String> = state
        .pointer("/world/locations")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let npc_count = state
        .get("npcs")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);

    if let Some(gs) = state.get_mut("game_state").and_then(Value::as_object_mut) {
        gs.insert("turn".into(), json!(turn));
        gs.insert("time_of_day".into(), json!(time_of_day(turn)));
        gs.insert("day".into(), json!(day(turn)));
        if r.chance(1, 10) {
            gs.insert("weather".into(), json!(r.pick(WEATHER)));
        }
    }

    if let Some(rng) = state.get_mut("rng").and_then(Value::as_object_mut) {
        let counter = rng.get("counter").and_then(Value::as_i64).unwrap_or(0);
        rng.insert("counter".into(), json!(counter + 1 + r.below(4) as i64));
    }

    let mut item_event = None;
    if let Some(player) = state.get_mut("player").and_then(Value::as_object_mut) {
        let max_hp = player.get("max_hp").and_then(Value::as_i64).unwrap_or(100);
        let hp = player.get("hp").and_then(Value::as_i64).unwrap_or(max_hp);
        let hp = (hp + r.below(13) as i64 - 7).clamp(1, max_hp);
        player.insert("hp".into(), json!(hp));
        let gold = player.get("gold").and_then(Value::as_i64).unwrap_or(0);
        player.insert("gold".into(), json!((gold + r.below(16) as i64 - 5).max(0)));
        nudge_position(player, &mut r);
        if r.chance(1, 6) && !location_ids.is_empty() {
            let to = r.pick(&location_ids).clone();
            player.insert("location".into(), json!(to));
        }
        if r.chance(1, 4) {
            if let Some(inv) = player.get_mut("inventory").and_then(Value::as_array_mut) {
                item_event = Some(inventory_event(inv, &mut r));
            }
        }
    }
    if let Some(loc) = state.pointer("/player/location").cloned() {
        if let Some(gs) = state.get_mut("game_state").and_then(Value::as_object_mut) {
            gs.insert("scene".into(), loc);
        }
    }

    let mut moved = None;
    if let Some(npcs) = state.get_mut("npcs").and_then(Value::as_array_mut) {
        if !npcs.is_empty() {
            let i = r.below(npcs.len() as u64) as usize;
            if let Some(npc) = npcs[i].as_object_mut() {
                if !location_ids.is_empty() {
                    let to = r.pick(&location_ids).clone();
                    npc.insert("location".into(), json!(to));
                }
                npc.insert("x".into(), coord(&mut r));
                npc.insert("y".into(), coord(&mut r));
                moved = npc.get("name").and_then(Value::as_str).map(str::to_owned);
            }
            if r.chance(1, 3) {
                let j = r.below(npcs.len() as u64) as usize;
                if let Some(npc) = npcs[j].as_object_mut() {
                    npc.insert("mood".into(), json!(r.pick(MOODS)));
                    let hp = npc.get("hp").and_then(Value::as_i64).unwrap_or(20);
                    npc.insert("hp".into(), json!((hp + r.below(7) as i64 - 3).max(1)));
                }
            }
        }
    }

    if r.chance(1, 8) {
        if let Some(objs) = state
            .pointer_mut("/hot/objectives")
            .and_then(Value::as_array_mut)
        {
            if !objs.is_empty() {
                let i = r.below(objs.len() as u64) as usize;
                if let Some(o) = objs[i].as_object_mut() {
                    o.insert("status".into(), json!(r.pick(STATUSES)));
                    o.insert("priority".into(), json!(1 + r.below(5)));
                }
            }
        }
    }
    if r.chance(1, 10) {
        if let Some(flags) = state
            .pointer_mut("/world/flags")
            .and_then(Value::as_object_mut)
        {
            let name = format!("event_{}", r.pick(FLAG_EVENTS));
            flags.insert(name, json!(true));
        }
    }

    // The turn's episodic memory, then compaction when memory has outgrown its budget.
    let who = moved.unwrap_or_else(|| "Someone".to_owned());
    let place = r.pick(PLACE_NOUNS).to_lowercase();
    let mut text = format!("{who} {} near the {place}", r.pick(ACTIONS));
    if let Some(event) = item_event {
        text.push_str("; the player ");
        text.push_str(&event);
    }
    text.push('.');
    let salience = cents(10 + r.below(86) as i64);
    let budget = EPISODIC_PER_NPC * npc_count + EPISODIC_COMPACTION;
    let mut summary = None;
    if let Some(episodic) = state
        .pointer_mut("/memory/episodic")
        .and_then(Value::as_array_mut)
    {
        episodic.push(json!({"text": text, "salience": salience, "turn": turn}));
        if episodic.len() > budget {
            let dropped: Vec<Value> = episodic.drain(..EPISODIC_COMPACTION).collect();
            let first = dropped[0].get("turn").and_then(Value::as_i64).unwrap_or(0);
            let last = dropped[EPISODIC_COMPACTION - 1]
                .get("turn")
                .and_then(Value::as_i64)
                .unwrap_or(turn);
            summary = Some(format!(
                "Turns {first} to {last}: {} memories condensed; the party pressed on toward the {}.",
                dropped.len(),
                r.pick(PLACE_NOUNS).to_lowercase()
            ));
        }
    }
    if summary.is_none() && r.chance(1, 16) {
        summary = Some(format!(
            "Remember: {} {}",
            r.pick(OPENERS).to_lowercase(),
            r.pick(RUMORS)
        ));
    }
    if let Some(text) = summary {
        let max_pins = npc_count / 3 + 4;
        if let Some(pins) = state
            .pointer_mut("/memory/warm/pins")
            .and_then(Value::as_array_mut)
        {
            pins.push(json!({"text": text, "turn": turn}));
            if pins.len() > max_pins {
                pins.remove(0);
            }
        }
    }
}

/// Turns in one in-game day: three per time of day.
const TURNS_PER_DAY: i64 = 3 * TIMES_OF_DAY.len() as i64;

/// The in-game day of `turn`, from 1.
fn day(turn: i64) -> i64 {
    1 + turn.div_euclid(TURNS_PER_DAY)
}

/// The time of day at `turn`.
fn time_of_day(turn: i64) -> &'static str {
    TIMES_OF_DAY[(turn.rem_euclid(TURNS_PER_DAY) / 3) as usize]
}

/// Adds, removes or restacks one player item; returns what happened, for the memory text.
fn inventory_event(inv: &mut Vec<Value>, r: &mut Rng) -> String {
    let roll = r.below(3);
    if !inv.is_empty() && (roll == 0 || inv.len() >= MAX_PLAYER_ITEMS) {
        let i = r.below(inv.len() as u64) as usize;
        let item = inv.remove(i);
        let name = item
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("an item");
        format!("lost the {}", name.to_lowercase())
    } else if !inv.is_empty() && roll == 1 {
        let i = r.below(inv.len() as u64) as usize;
        let qty = inv[i].get("qty").and_then(Value::as_i64).unwrap_or(1);
        let qty = (qty + r.below(5) as i64 - 2).max(1);
        if let Some(item) = inv[i].as_object_mut() {
            item.insert("qty".into(), json!(qty));
        }
        "counted the supplies".to_owned()
    } else {
        let item = item(r);
        let name = item["name"].as_str().unwrap_or("an item").to_lowercase();
        inv.push(item);
        format!("found a {name}")
    }
}

fn nudge_position(obj: &mut Map<String, Value>, r: &mut Rng) {
    for axis in ["x", "y"] {
        let now = obj.get(axis).and_then(Value::as_f64).unwrap_or(0.0);
        // Positions are multiples of 0.5, so twice the value is an exact integer.
        let halves = (now * 2.0).round() as i64 + r.below(9) as i64 - 4;
        obj.insert(axis.into(), halves_value(halves.clamp(0, 2000)));
    }
}

#[derive(Clone, Copy)]
enum Step {
    Location,
    Npc,
    Episodic,
    Pin,
    Objective,
    Quest,
}

/// Builds a state while keeping its exact canonical size, so no full re-serialization is needed
/// to know when the target is reached.
struct Builder {
    r: Rng,
    size: usize,
    game_state: Map<String, Value>,
    npcs: Vec<Value>,
    player: Map<String, Value>,
    rng: Map<String, Value>,
    locations: Map<String, Value>,
    flags: Map<String, Value>,
    adventure: Map<String, Value>,
    quests: Vec<Value>,
    pins: Vec<Value>,
    episodic: Vec<Value>,
    objectives: Vec<Value>,
    turn: i64,
}

impl Builder {
    fn new(seed: u64) -> Builder {
        Builder {
            r: Rng::new(seed),
            size: 0,
            game_state: Map::new(),
            npcs: Vec::new(),
            player: Map::new(),
            rng: Map::new(),
            locations: Map::new(),
            flags: Map::new(),
            adventure: Map::new(),
            quests: Vec::new(),
            pins: Vec::new(),
            episodic: Vec::new(),
            objectives: Vec::new(),
            turn: 0,
        }
    }

    /// The fixed part: sections, the player, two locations, one NPC, one quest, one objective.
    fn skeleton(&mut self) {
        let r = &mut self.r;
        let first = r.pick(FIRST_NAMES);
        let family = r.pick(FAMILY_NAMES);
        let mut inventory = Vec::new();
        for _ in 0..6 {
            inventory.push(item(r));
        }
        let player = json!({
            "name": format!("{first} {family}"),
            "class": r.pick(CLASSES),
            "level": 3 + r.below(5),
            "xp": 1000 + r.below(4000),
            "hp": 60 + r.below(40),
            "max_hp": 100,
            "gold": 50 + r.below(400),
            "location": "",
            "x": coord(r),
            "y": coord(r),
            "inventory": inventory,
            "stats": {
                "str": 8 + r.below(10), "dex": 8 + r.below(10), "con": 8 + r.below(10),
                "int": 8 + r.below(10), "wis": 8 + r.below(10), "cha": 8 + r.below(10)
            },
            "status_effects": []
        });
        self.player = into_map(player);
        self.rng = into_map(json!({
            "seed": (r.next_u64() >> 11) as i64,
            "counter": r.below(1000)
        }));
        self.adventure = into_map(json!({
            "chapter": 1 + r.below(4),
            "title": format!("The {} {}", r.pick(PLACE_ADJECTIVES), r.pick(PLACE_NOUNS)),
        }));
        self.flags = into_map(json!({"tutorial_done": true, "bridge_open": false}));
        // Sizes of the empty skeleton are measured once; every later addition is accounted for
        // exactly by `grow`.
        self.size = canonical_len(&self.assemble());
        self.add(Step::Location);
        self.add(Step::Location);
        let start = self.locations.keys().next().cloned().unwrap_or_default();
        self.player.insert("location".into(), json!(start));
        self.game_state = into_map(json!({
            "scene": start,
            "turn": 0,
            "day": 1,
            "time_of_day": TIMES_OF_DAY[0],
            "weather": WEATHER[0],
            "mode": "explore",
            "difficulty": "normal"
        }));
        self.size = canonical_len(&self.assemble());
        self.add(Step::Npc);
        self.add(Step::Quest);
        self.add(Step::Objective);
        self.add(Step::Episodic);
    }

    fn add(&mut self, step: Step) {
        self.turn += 1;
        match step {
            Step::Location => {
                let (id, loc) = self.location();
                self.size += member_len(&self.locations, &id, &loc);
                self.locations.insert(id, loc);
            }
            Step::Npc => {
                let npc = self.npc();
                self.size += element_len(&self.npcs, &npc);
                let flag = format!(
                    "met_{}",
                    npc["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_lowercase()
                        .replace(' ', "_")
                );
                let met = json!(self.r.chance(1, 2));
                // Names can repeat; the first NPC of a name owns its flag.
                if !self.flags.contains_key(&flag) {
                    self.size += member_len(&self.flags, &flag, &met);
                    self.flags.insert(flag, met);
                }
                self.npcs.push(npc);
            }
            Step::Episodic => {
                let m = self.episodic_memory();
                self.size += element_len(&self.episodic, &m);
                self.episodic.push(m);
            }
            Step::Pin => {
                let p = json!({"text": self.line(), "turn": self.turn});
                self.size += element_len(&self.pins, &p);
                self.pins.push(p);
            }
            Step::Objective => {
                let o = self.objective();
                self.size += element_len(&self.objectives, &o);
                self.objectives.push(o);
            }
            Step::Quest => {
                let q = self.quest();
                self.size += element_len(&self.quests, &q);
                self.quests.push(q);
            }
        }
    }

    fn location(&mut self) -> (String, Value) {
        let r = &mut self.r;
        let adjective = r.pick(PLACE_ADJECTIVES);
        let noun = r.pick(PLACE_NOUNS);
        let id = format!(
            "{}-{}-{}",
            adjective.to_lowercase(),
            noun.to_lowercase(),
            self.locations.len() + 1
        );
        let mut exits = Vec::new();
        let known: Vec<&String> = self.locations.keys().collect();
        for _ in 0..known.len().min(1 + r.below(3) as usize) {
            exits.push(json!(known[r.below(known.len() as u64) as usize]));
        }
        let loc = json!({
            "name": format!("The {adjective} {noun}"),
            "description": format!(
                "A {} {} where {}",
                r.pick(TEXTURES),
                noun.to_lowercase(),
                r.pick(RUMORS)
            ),
            "exits": exits,
            "discovered": r.chance(2, 3),
            "danger": r.below(6),
            "x": coord(r),
            "y": coord(r)
        });
        (id, loc)
    }

    fn npc(&mut self) -> Value {
        let ids: Vec<&String> = self.locations.keys().collect();
        let r = &mut self.r;
        let location = ids[r.below(ids.len() as u64) as usize].clone();
        let name = format!("{} {}", r.pick(FIRST_NAMES), r.pick(FAMILY_NAMES));
        let inventory: Vec<Value> = (0..1 + r.below(4))
            .map(|_| json!(r.pick(ITEMS).0))
            .collect();
        let dialogue: Vec<Value> = (0..2 + r.below(3))
            .map(|_| json!(format!("{} {}", r.pick(OPENERS), r.pick(RUMORS))))
            .collect();
        json!({
            "id": uuid(r),
            "name": name,
            "role": r.pick(ROLES),
            "location": location,
            "x": coord(r),
            "y": coord(r),
            "hp": 10 + r.below(40),
            "mood": r.pick(MOODS),
            "disposition": cents(r.below(201) as i64 - 100),
            "inventory": inventory,
            "dialogue": dialogue
        })
    }

    fn episodic_memory(&mut self) -> Value {
        let text = self.line();
        let salience = cents(5 + self.r.below(95) as i64);
        json!({"text": text, "salience": salience, "turn": self.turn})
    }

    /// A sentence about someone of the world doing something somewhere.
    fn line(&mut self) -> String {
        let r = &mut self.r;
        let who = match self.npcs.len() {
            0 => format!("{} {}", r.pick(FIRST_NAMES), r.pick(FAMILY_NAMES)),
            n => self.npcs[r.below(n as u64) as usize]["name"]
                .as_str()
                .unwrap_or("Someone")
                .to_owned(),
        };
        format!(
            "{who} {} near the {}: {}",
            r.pick(ACTIONS),
            r.pick(PLACE_NOUNS).to_lowercase(),
            r.pick(RUMORS)
        )
    }

    fn objective(&mut self) -> Value {
        let r = &mut self.r;
        let (item, _) = r.pick(ITEMS);
        let text = match r.below(3) {
            0 => format!(
                "Bring the {} to the {}",
                item.to_lowercase(),
                r.pick(PLACE_NOUNS).to_lowercase()
            ),
            1 => format!("Find out why {}", r.pick(RUMORS).trim_end_matches('.')),
            _ => format!(
                "Talk to the {} about the {}",
                r.pick(ROLES),
                r.pick(PLACE_NOUNS).to_lowercase()
            ),
        };
        json!({
            "id": format!("obj-{}", self.objectives.len() + 1),
            "text": text,
            "priority": 1 + r.below(5),
            "status": r.pick(STATUSES)
        })
    }

    fn quest(&mut self) -> Value {
        let r = &mut self.r;
        let steps: Vec<Value> = (0..2 + r.below(3))
            .map(|i| {
                json!({
                    "text": format!("Visit the {} and ask about the {}", r.pick(PLACE_NOUNS).to_lowercase(), r.pick(ITEMS).0.to_lowercase()),
                    "done": i == 0
                })
            })
            .collect();
        json!({
            "id": uuid(r),
            "title": format!("The {} {}", r.pick(PLACE_ADJECTIVES), r.pick(PLACE_NOUNS)),
            "status": r.pick(STATUSES),
            "steps": steps
        })
    }

    /// Records the turn (and day) the history reached as the state's current one.
    fn close(&mut self) {
        let turn = self.turn;
        let fields = [
            ("turn", json!(turn)),
            ("day", json!(day(turn))),
            ("time_of_day", json!(time_of_day(turn))),
        ];
        for (key, value) in fields {
            self.size += canonical_len(&value);
            let old = self.game_state.insert(key.into(), value);
            self.size -= old.as_ref().map_or(0, canonical_len);
        }
    }

    fn assemble(&self) -> Value {
        let mut adventure = self.adventure.clone();
        adventure.insert("quests".into(), Value::Array(self.quests.clone()));
        json!({
            "game_state": Value::Object(self.game_state.clone()),
            "npcs": Value::Array(self.npcs.clone()),
            "player": Value::Object(self.player.clone()),
            "rng": Value::Object(self.rng.clone()),
            "world": {
                "locations": Value::Object(self.locations.clone()),
                "flags": Value::Object(self.flags.clone())
            },
            "adventure": Value::Object(adventure),
            "memory": {
                "warm": {"pins": Value::Array(self.pins.clone())},
                "episodic": Value::Array(self.episodic.clone())
            },
            "hot": {"objectives": Value::Array(self.objectives.clone())}
        })
    }

    fn finish(self) -> Value {
        let mut adventure = self.adventure;
        adventure.insert("quests".into(), Value::Array(self.quests));
        json!({
            "game_state": Value::Object(self.game_state),
            "npcs": Value::Array(self.npcs),
            "player": Value::Object(self.player),
            "rng": Value::Object(self.rng),
            "world": {
                "locations": Value::Object(self.locations),
                "flags": Value::Object(self.flags)
            },
            "adventure": Value::Object(adventure),
            "memory": {
                "warm": {"pins": Value::Array(self.pins)},
                "episodic": Value::Array(self.episodic)
            },
            "hot": {"objectives": Value::Array(self.objectives)}
        })
    }
}

/// Canonical length of a value made by this module (which only makes canonicalizable values).
fn canonical_len(v: &Value) -> usize {
    awf_core::canonical::canonical_bytes(v).map_or(0, |b| b.len())
}

/// Bytes that appending `v` to `array` adds to the canonical form.
fn element_len(array: &[Value], v: &Value) -> usize {
    canonical_len(v) + usize::from(!array.is_empty())
}

/// Bytes that inserting a new member `key: v` into `map` adds to the canonical form.
fn member_len(map: &Map<String, Value>, key: &str, v: &Value) -> usize {
    canonical_len(&Value::String(key.to_owned()))
        + 1
        + canonical_len(v)
        + usize::from(!map.is_empty())
}

fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A player item: `{id, name, qty}`.
fn item(r: &mut Rng) -> Value {
    let (name, stacks) = r.pick(ITEMS);
    let qty = if *stacks { 1 + r.below(12) } else { 1 };
    json!({"id": uuid(r), "name": name, "qty": qty})
}

/// A UUID-shaped (version 4 layout) id.
fn uuid(r: &mut Rng) -> String {
    let a = r.next_u64();
    let b = r.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// A map coordinate: a multiple of 0.5 in 0..=1000.
fn coord(r: &mut Rng) -> Value {
    halves_value(r.below(2001) as i64)
}

/// `halves / 2` as an exact JSON number (`12` or `12.5`).
fn halves_value(halves: i64) -> Value {
    if halves % 2 == 0 {
        json!(halves / 2)
    } else {
        json!(halves as f64 / 2.0)
    }
}

/// `hundredths / 100` as an exact JSON number with at most two decimals (`0.35`, `-1`).
fn cents(hundredths: i64) -> Value {
    if hundredths % 100 == 0 {
        json!(hundredths / 100)
    } else {
        // Division is correctly rounded, so the double is the one nearest to the decimal and its
        // shortest form (what serde_json writes) is that decimal.
        json!(hundredths as f64 / 100.0)
    }
}

/// splitmix64: tiny, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough integer in `0..n` (`n > 0`; 0 when `n == 0`).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const FIRST_NAMES: &[&str] = &[
    "Aldric", "Brenna", "Corwin", "Dagny", "Elowen", "Fenwick", "Garrick", "Hesper", "Ilsa",
    "Jorah", "Kestrel", "Lorcan", "Maren", "Nyx", "Orrin", "Perrin", "Quill", "Rowan", "Sable",
    "Tamsin", "Ulric", "Vesna", "Wren", "Yorick", "Zara",
];
const FAMILY_NAMES: &[&str] = &[
    "Ashford",
    "Blackwood",
    "Cinderfell",
    "Dunmore",
    "Emberly",
    "Frost",
    "Greaves",
    "Holloway",
    "Ironside",
    "Jasper",
    "Kettle",
    "Larkspur",
    "Marsh",
    "Northcott",
    "Oakheart",
    "Pike",
    "Quarry",
    "Ravensworth",
    "Stone",
    "Thorne",
];
const CLASSES: &[&str] = &["ranger", "wizard", "rogue", "paladin", "bard", "druid"];
const ROLES: &[&str] = &[
    "blacksmith",
    "innkeeper",
    "hedge witch",
    "ferryman",
    "guard captain",
    "cartographer",
    "herbalist",
    "smuggler",
    "priestess",
    "bard",
    "miner",
    "scribe",
];
const MOODS: &[&str] = &[
    "calm",
    "wary",
    "cheerful",
    "angry",
    "afraid",
    "curious",
    "grieving",
    "suspicious",
    "friendly",
    "bored",
];
const STATUSES: &[&str] = &["open", "active", "active", "done", "failed"];
const TIMES_OF_DAY: &[&str] = &["dawn", "morning", "noon", "afternoon", "dusk", "night"];
const WEATHER: &[&str] = &["clear", "overcast", "rain", "fog", "storm", "snow"];
const PLACE_ADJECTIVES: &[&str] = &[
    "Hollow",
    "Sunken",
    "Whispering",
    "Old",
    "Crimson",
    "Silent",
    "Frozen",
    "Gilded",
    "Broken",
    "Misty",
];
const PLACE_NOUNS: &[&str] = &[
    "Mill",
    "Crossing",
    "Bridge",
    "Chapel",
    "Market",
    "Harbor",
    "Watchtower",
    "Grove",
    "Quarry",
    "Tavern",
    "Gate",
    "Barrow",
    "Library",
    "Orchard",
];
const TEXTURES: &[&str] = &[
    "draughty",
    "crowded",
    "moss-covered",
    "half-ruined",
    "lantern-lit",
    "rain-soaked",
    "quiet",
    "smoky",
];
/// Item names, and whether they stack.
const ITEMS: &[(&str, bool)] = &[
    ("Healing Draught", true),
    ("Iron Sword", false),
    ("Rope (50 ft)", false),
    ("Lantern", false),
    ("Silver Key", false),
    ("Map Fragment", true),
    ("Bread", true),
    ("Wolf Pelt", true),
    ("Lockpick", true),
    ("Rune Stone", true),
    ("Torch", true),
    ("Elven Cloak", false),
    ("Arrow", true),
    ("Bandage", true),
    ("Spyglass", false),
    ("Sealed Letter", false),
];
const OPENERS: &[&str] = &[
    "Mind the road after dark:",
    "I've heard whispers that",
    "Between you and me,",
    "Don't tell the captain, but",
    "Strange times, traveller:",
    "If you ask me,",
    "My grandmother swore that",
];
const RUMORS: &[&str] = &[
    "the mill wheel turns by itself at midnight.",
    "the old chapel bell rang with no one in the tower.",
    "wolves have been seen near the southern gate.",
    "a merchant paid in coins nobody recognises.",
    "the river carried a sealed letter downstream.",
    "the quarry workers dug up a door of black stone.",
    "the harbor lights went out three nights running.",
    "someone has been buying every lantern in town.",
    "the library's oldest map shows a road that is not there.",
    "the orchard trees bloom in the middle of winter.",
];
const ACTIONS: &[&str] = &[
    "shared a rumour",
    "haggled over prices",
    "was seen arguing with a stranger",
    "asked the player for help",
    "handed over a worn map",
    "warned of danger",
    "laughed at an old joke",
    "paid a debt in silver",
];
const FLAG_EVENTS: &[&str] = &[
    "storm_passed",
    "bell_rang",
    "gate_closed",
    "festival_started",
    "bridge_repaired",
    "stranger_arrived",
];

#[cfg(test)]
mod tests {
    use super::*;
    use awf_core::canonical::canonical_bytes;
    use awf_core::diff::diff;
    use awf_core::patch::{apply, ops_to_value};

    fn size(v: &Value) -> usize {
        canonical_bytes(v)
            .expect("sample states canonicalize")
            .len()
    }

    #[test]
    fn same_arguments_give_the_same_bytes() {
        let a = game_state(20_000, 7);
        let b = game_state(20_000, 7);
        assert_eq!(canonical_bytes(&a).unwrap(), canonical_bytes(&b).unwrap());
        let c = game_state(20_000, 8);
        assert_ne!(canonical_bytes(&a).unwrap(), canonical_bytes(&c).unwrap());

        let mut x = a.clone();
        let mut y = a;
        for turn in 1..=20 {
            next_turn(&mut x, turn, 99);
            next_turn(&mut y, turn, 99);
        }
        assert_eq!(canonical_bytes(&x).unwrap(), canonical_bytes(&y).unwrap());
    }

    #[test]
    fn size_is_within_tolerance() {
        for target in [20_000usize, 200_000] {
            for seed in [0u64, 1, 42, u64::MAX] {
                let s = game_state(target, seed);
                let got = size(&s);
                let off = got.abs_diff(target) as f64 / target as f64;
                assert!(off <= 0.05, "target {target}, seed {seed}: got {got} bytes");
            }
        }
        // A tiny target gives the skeleton, which is still a complete state.
        let tiny = game_state(10, 3);
        assert!(size(&tiny) < 5_000);
        for section in [
            "game_state",
            "npcs",
            "player",
            "rng",
            "world",
            "adventure",
            "hot",
        ] {
            assert!(tiny.get(section).is_some(), "{section}");
        }
        assert!(tiny.pointer("/memory/warm/pins").is_some());
        assert!(tiny.pointer("/memory/episodic/0/salience").is_some());
        assert!(tiny.pointer("/hot/objectives/0/priority").is_some());
    }

    #[test]
    fn size_accounting_is_exact() {
        // The builder tracks the canonical size without re-serializing; check it end to end.
        for target in [3_000usize, 20_000, 77_777] {
            let mut g = Builder::new(5);
            g.skeleton();
            while g.size < target {
                g.add(Step::Npc);
                g.add(Step::Location);
                g.add(Step::Episodic);
                g.add(Step::Pin);
                g.add(Step::Objective);
                g.add(Step::Quest);
            }
            g.close();
            let expected = g.size;
            let state = g.finish();
            assert_eq!(size(&state), expected);
            assert!(turn_of(&state) > 0);
        }
    }

    #[test]
    fn a_turn_changes_the_state_a_little() {
        for target in [20_000usize, 200_000] {
            let mut state = game_state(target, 11);
            let first = turn_of(&state) + 1;
            for turn in first..first + 30 {
                let before = state.clone();
                next_turn(&mut state, turn, 5);
                let ops = diff(&before, &state, &mut awf_core::Budget::default()).unwrap();
                let patch = ops_to_value(&ops);
                let patch_len = size(&patch);
                assert!(!ops.is_empty());
                assert!(
                    ops.len() <= 30 && patch_len <= 2_500,
                    "turn {turn} at {target}: {} ops, {patch_len} B",
                    ops.len()
                );
                assert_eq!(state["game_state"]["turn"], json!(turn));
                let rebuilt = apply(&before, &patch, &mut awf_core::Budget::default()).unwrap();
                assert_eq!(
                    canonical_bytes(&rebuilt).unwrap(),
                    canonical_bytes(&state).unwrap()
                );
            }
        }
    }

    #[test]
    fn long_chains_keep_their_size() {
        let mut state = game_state(20_000, 3);
        let start = size(&state);
        let first = turn_of(&state) + 1;
        for turn in first..first + 500 {
            next_turn(&mut state, turn, 3);
        }
        assert_eq!(turn_of(&state), first + 499);
        let end = size(&state);
        let off = end.abs_diff(start) as f64 / start as f64;
        assert!(
            off < 0.25,
            "20 KB state after 500 turns: {start} -> {end} bytes"
        );
    }

    #[test]
    fn seeds_make_turns_diverge() {
        let base = game_state(20_000, 1);
        let mut ours = base.clone();
        let mut theirs = base.clone();
        next_turn(&mut ours, 1, 100);
        next_turn(&mut theirs, 1, 200);
        assert_ne!(
            canonical_bytes(&ours).unwrap(),
            canonical_bytes(&theirs).unwrap()
        );
    }

    #[test]
    fn next_turn_tolerates_other_documents() {
        let mut v = json!({"player": {"name": "x"}, "npcs": []});
        next_turn(&mut v, 1, 1);
        assert!(v["player"]["hp"].is_i64());
        assert!(v["player"]["x"].is_number());
        let mut v = json!([1, 2]);
        next_turn(&mut v, 1, 1);
        assert_eq!(v, json!([1, 2]));
    }
}
