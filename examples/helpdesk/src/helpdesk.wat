;; Helpdesk: an example metacore addon backend, hand-written in WebAssembly text.
;;
;; ABI (docs/sandbox.md): exports `memory`, `alloc(i32) -> i32`, and functions
;; `(ptr i32, len i32) -> i64` taking JSON and returning `ptr << 32 | len` of JSON.
;; Host imports come from `metacore_host`; every one is checked against the manifest's
;; capabilities by the host.
;;
;; Exports
;;   resolve   row action: UPDATE the ticket (db_exec, inside the action's transaction),
;;             emit `helpdesk.ticket_resolved` (event_emit), answer {success, data}.
;;   escalate  row action that does the same writes and then declines, so the host rolls
;;             the writes and the event back: a demonstration of run_in_tx.
;;   summary   {success, data: {rows: [{status, n}]}} through db_query (read-only).
;;   echo      returns its input (the benchmark's 1 KiB round trip).
;;   on_install lifecycle hook: logs and succeeds.
(module
  (import "metacore_host" "log" (func $log (param i32 i32)))
  (import "metacore_host" "db_query" (func $db_query (param i32 i32 i32 i32) (result i64)))
  (import "metacore_host" "db_exec" (func $db_exec (param i32 i32 i32 i32) (result i64)))
  (import "metacore_host" "event_emit" (func $event_emit (param i32 i32 i32 i32) (result i64)))

  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (global $out (mut i32) (i32.const 0))
  (global $out_len (mut i32) (i32.const 0))

  (data (i32.const 16)   "\"id\":\"")                                  ;; 6
  (data (i32.const 32)   "\"resolution\":\"")                          ;; 14
  (data (i32.const 64)   "UPDATE tickets SET status = 'resolved', resolution = $2 WHERE id = $1") ;; 69
  (data (i32.const 160)  "[{\"$uuid\":\"")                             ;; 11
  (data (i32.const 176)  "\"},\"")                                     ;; 4
  (data (i32.const 184)  "\"]")                                        ;; 2
  (data (i32.const 192)  "helpdesk.ticket_resolved")                   ;; 24
  (data (i32.const 224)  "{\"id\":\"")                                 ;; 7
  (data (i32.const 232)  "\"}")                                        ;; 2
  (data (i32.const 240)  "{\"success\":true,\"data\":{\"id\":\"")      ;; 30
  (data (i32.const 272)  "\",\"status\":\"resolved\"}}")               ;; 23
  (data (i32.const 304)  "\"success\":true")                           ;; 14
  (data (i32.const 320)  "{\"success\":false,\"error\":{\"code\":\"db_exec_failed\",\"message\":\"the ticket could not be updated\"}}") ;; 95
  (data (i32.const 448)  "{\"success\":false,\"error\":{\"code\":\"escalation_refused\",\"message\":\"escalation is not possible; nothing was changed\"}}") ;; 115
  (data (i32.const 576)  "{\"success\":false,\"error\":{\"code\":\"bad_input\",\"message\":\"row id or resolution missing\"}}") ;; 87
  (data (i32.const 672)  "SELECT status, count(*) AS n FROM tickets GROUP BY status ORDER BY status") ;; 73
  (data (i32.const 752)  "[]")                                         ;; 2
  (data (i32.const 760)  "helpdesk installed")                         ;; 18
  (data (i32.const 784)  "{\"success\":true}")                         ;; 16

  ;; bump allocator; grows memory as needed (the host's memory limit still applies)
  (func $alloc (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (global.get $heap) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (block $ok
      (loop $grow
        (br_if $ok (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (local.get $p))

  (func $pack (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $n))))

  ;; index of needle in haystack, or -1
  (func $find (param $h i32) (param $hn i32) (param $k i32) (param $kn i32) (result i32)
    (local $i i32) (local $j i32)
    (block $none
      (loop $outer
        (br_if $none (i32.gt_s (i32.add (local.get $i) (local.get $kn)) (local.get $hn)))
        (local.set $j (i32.const 0))
        (block $mismatch
          (loop $inner
            (if (i32.ge_u (local.get $j) (local.get $kn)) (then (return (local.get $i))))
            (br_if $mismatch
              (i32.ne (i32.load8_u (i32.add (local.get $h) (i32.add (local.get $i) (local.get $j))))
                      (i32.load8_u (i32.add (local.get $k) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $inner)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (i32.const -1))

  ;; the raw (still JSON-escaped) string value after `"key":"`, packed; 0 when absent
  (func $string_after (param $h i32) (param $hn i32) (param $k i32) (param $kn i32) (result i64)
    (local $at i32) (local $start i32) (local $end i32) (local $stop i32) (local $c i32)
    (local.set $at (call $find (local.get $h) (local.get $hn) (local.get $k) (local.get $kn)))
    (if (i32.lt_s (local.get $at) (i32.const 0)) (then (return (i64.const 0))))
    (local.set $start (i32.add (i32.add (local.get $h) (local.get $at)) (local.get $kn)))
    (local.set $stop (i32.add (local.get $h) (local.get $hn)))
    (local.set $end (local.get $start))
    (block $done
      (loop $scan
        (br_if $done (i32.ge_u (local.get $end) (local.get $stop)))
        (local.set $c (i32.load8_u (local.get $end)))
        (br_if $done (i32.eq (local.get $c) (i32.const 34)))
        (local.set $end (i32.add (local.get $end) (select (i32.const 2) (i32.const 1) (i32.eq (local.get $c) (i32.const 92)))))
        (br $scan)))
    (if (i32.ge_u (local.get $end) (local.get $stop)) (then (return (i64.const 0))))
    (call $pack (local.get $start) (i32.sub (local.get $end) (local.get $start))))

  ;; output buffer
  (func $out_begin (param $size i32)
    (global.set $out (call $alloc (local.get $size)))
    (global.set $out_len (i32.const 0)))
  (func $put (param $p i32) (param $n i32)
    (memory.copy (i32.add (global.get $out) (global.get $out_len)) (local.get $p) (local.get $n))
    (global.set $out_len (i32.add (global.get $out_len) (local.get $n))))
  (func $put_packed (param $pn i64)
    (call $put (i32.wrap_i64 (i64.shr_u (local.get $pn) (i64.const 32))) (i32.wrap_i64 (local.get $pn))))
  (func $out_end (result i64) (call $pack (global.get $out) (global.get $out_len)))

  (func $ptr (param $pn i64) (result i32) (i32.wrap_i64 (i64.shr_u (local.get $pn) (i64.const 32))))
  (func $len (param $pn i64) (result i32) (i32.wrap_i64 (local.get $pn)))

  ;; resolve the ticket in the input: db_exec + event_emit. 0 on success, else a packed error.
  (func $apply (param $p i32) (param $n i32) (result i64)
    (local $id i64) (local $res i64) (local $args i64) (local $reply i64)
    (local.set $id (call $string_after (local.get $p) (local.get $n) (i32.const 16) (i32.const 6)))
    (local.set $res (call $string_after (local.get $p) (local.get $n) (i32.const 32) (i32.const 14)))
    (if (i32.or (i64.eqz (local.get $id)) (i64.eqz (local.get $res)))
      (then (return (call $pack (i32.const 576) (i32.const 87)))))
    ;; args: [{"$uuid":"<id>"},"<resolution>"]
    (call $out_begin (i32.add (local.get $n) (i32.const 64)))
    (call $put (i32.const 160) (i32.const 11))
    (call $put_packed (local.get $id))
    (call $put (i32.const 176) (i32.const 4))
    (call $put_packed (local.get $res))
    (call $put (i32.const 184) (i32.const 2))
    (local.set $args (call $out_end))
    (local.set $reply (call $db_exec (i32.const 64) (i32.const 69) (call $ptr (local.get $args)) (call $len (local.get $args))))
    (if (i32.lt_s (call $find (call $ptr (local.get $reply)) (call $len (local.get $reply)) (i32.const 304) (i32.const 14)) (i32.const 0))
      (then (return (call $pack (i32.const 320) (i32.const 95)))))
    ;; event payload: {"id":"<id>"}
    (call $out_begin (i32.add (call $len (local.get $id)) (i32.const 16)))
    (call $put (i32.const 224) (i32.const 7))
    (call $put_packed (local.get $id))
    (call $put (i32.const 232) (i32.const 2))
    (drop (call $event_emit (i32.const 192) (i32.const 24) (global.get $out) (global.get $out_len)))
    (i64.const 0))

  (func (export "resolve") (param $p i32) (param $n i32) (result i64)
    (local $err i64) (local $id i64)
    (local.set $err (call $apply (local.get $p) (local.get $n)))
    (if (i64.ne (local.get $err) (i64.const 0)) (then (return (local.get $err))))
    (local.set $id (call $string_after (local.get $p) (local.get $n) (i32.const 16) (i32.const 6)))
    (call $out_begin (i32.add (call $len (local.get $id)) (i32.const 64)))
    (call $put (i32.const 240) (i32.const 30))
    (call $put_packed (local.get $id))
    (call $put (i32.const 272) (i32.const 23))
    (call $out_end))

  (func (export "escalate") (param $p i32) (param $n i32) (result i64)
    (local $err i64)
    (local.set $err (call $apply (local.get $p) (local.get $n)))
    (if (i64.ne (local.get $err) (i64.const 0)) (then (return (local.get $err))))
    (call $pack (i32.const 448) (i32.const 115)))

  (func (export "summary") (param $p i32) (param $n i32) (result i64)
    (call $db_query (i32.const 672) (i32.const 73) (i32.const 752) (i32.const 2)))

  (func (export "echo") (param $p i32) (param $n i32) (result i64)
    (call $pack (local.get $p) (local.get $n)))

  (func (export "on_install") (param $p i32) (param $n i32) (result i64)
    (call $log (i32.const 760) (i32.const 18))
    (call $pack (i32.const 784) (i32.const 16)))
)
