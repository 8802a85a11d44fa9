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
        // An override with a launch template of its own launches instances
        // of its type from that template ("overrides the launch template that
        // is defined for the mixed instances policy", API Reference,
        // LaunchTemplateOverrides). Kiln sets an exact version of the
        // policy's template only, so those instances would come up on
        // whatever image the override's template names, never the release;
        // the same template named again by the override does not help, since
        // its version does not follow the one Kiln sets (nor its rollback).
        for override in state.launchTemplateOverrides {
            guard let own = override.launchTemplate else { continue }
            let type =
                override.instanceType.map { "instance type \($0)" }
                ?? (override.hasInstanceRequirements ? "instance requirements" : "an override")
            let template = [own.id ?? own.name ?? "?", own.version.map { "version \($0)" }]
                .compactMap { $0 }.joined(separator: " ")
            let policyTemplate = state.launchTemplate.flatMap { $0.id ?? $0.name } ?? "the policy's launch template"
            problems.append(
                """
                \(state.name)'s mixed instances policy launches \(type) from its own launch template \
                (\(template)), which Kiln does not update: those instances would launch on the old release. \
                Remove that override's LaunchTemplateSpecification, so that \(type) launches from \
                \(policyTemplate) (the template Kiln rolls), or roll that type in a group of its own
                """
            )
        }
        return problems
    }
}
