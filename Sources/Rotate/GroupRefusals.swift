import Foundation
import KilnAWS

/// What makes a group one Kiln will not roll as it stands, found from one
/// poll (and the group's warm pool) before anything changes; each is a
/// plan problem (exit 78) that says what to do. Nothing is ever skipped in
/// silence: an instance the rotation would leave on the old release is a
/// refusal here, not a surprise after a "deployed".
enum GroupRefusals {
    static func problems(state: AutoScalingGroup, instances: [ObservedInstance], warmPool: WarmPool?) -> [String] {
        var problems: [String] = []
        // A person (or a tool) took these out of service on purpose, often to
        // look at them. Replacing them means ExitStandby, which raises the
        // desired capacity by as many ("ExitStandby ... increments the desired
        // capacity", API Reference), or terminating them: either undoes that
        // person's decision, so Kiln asks instead of choosing.
        let standby = instances.filter { $0.lifecycleState == .standby || $0.lifecycleState == .enteringStandby }
        if !standby.isEmpty {
            let ids = standby.map(\.id).joined(separator: " ")
            problems.append(
                """
                \(standby.count) instance(s) of \(state.name) are in Standby (\(ids)), which a rotation cannot \
                replace without undoing whoever put them there: return them with \
                'aws autoscaling exit-standby --auto-scaling-group-name \(state.name) --instance-ids \(ids)' \
                (or detach them), then run again
                """
            )
        }
        // Warm pool instances are launched from the group's launch template
        // and enter service on scale-out ("Warm pools for Amazon EC2 Auto
        // Scaling", user guide): rolling the group alone would leave them on
        // the old release, to come back into service later.
        if let warmPool {
            problems.append(
                """
                \(state.name) has a warm pool (\(warmPool.poolState ?? "Stopped"), min size \(warmPool.minSize ?? 0)) \
                whose instances would enter service on the old release after the rotation; Kiln does not roll \
                warm pools: delete it ('aws autoscaling delete-warm-pool --auto-scaling-group-name \(state.name)'), \
                rotate, then put it back
                """
            )
        }
        return problems
    }
}
