import Foundation
import KilnAWS
import KilnArtifacts
import KilnCore

/// Old instances a rotation retired that have not gone yet, and what each
/// poll learns of them; one per `Rotation.converge`, used by its one thread.
struct Departures {
    /// Detached from the group (`detach-and-terminate`), not yet terminated.
    var detached: [String: ObservedInstance] = [:]
    /// Old instances seen live at the last poll: one absent from the next is
    /// gone, one terminating is leaving (the group's scale-in picked it).
    var lastOld: [String: ObservedInstance] = [:]
    /// Leaving instances already named in the log.
    var announced: Set<String> = []
    /// Tagged `kiln:retiring` by this run (`Rotation.markRetiring`).
    var marked: Set<String> = []
}

/// The group's termination lifecycle hooks, which decide the retirement method.
struct RetirementChoice: Sendable, Equatable {
    var method: RetirementMethod
    /// Names of the hooks with the `autoscaling:EC2_INSTANCE_TERMINATING` transition.
    var hooks: [String]

    init(hooks: [LifecycleHook]) {
        self.hooks = hooks.filter(\.holdsTerminations).map(\.name).sorted()
        method = self.hooks.isEmpty ? .detachAndTerminate : .scaleIn
    }

    /// In the log and the plan.
    var explanation: String {
        switch method {
        case .scaleIn:
            """
            scale-in (termination lifecycle hook \(hooks.joined(separator: ", "))): each batch's new instances \
            scale-in protected, then the desired capacity lowered by the batch, so that the group's own \
            scale-in retires old instances through the hook; the protection lifted at the end
            """
        case .detachAndTerminate:
            """
            detach-and-terminate (no termination lifecycle hook): every old instance tagged kiln:retiring \
            once; each batch's old instances detached (DetachInstances, 20 a call) without the decrement, \
            so that the group launches the next batch in their place (the last batch, or one before a \
            pause, with the decrement), then one TerminateInstances
            """
        }
    }
}

extension Rotation {
    /// How this group's old instances are retired: by its own scale-in where
    /// a termination lifecycle hook must see them go, else detached and
    /// terminated (one DescribeLifecycleHooks).
    func retirementChoice() throws -> RetirementChoice {
        RetirementChoice(hooks: try client.describeLifecycleHooks(group))
    }

    /// Retires a batch's old instances in bulk, a few calls whatever the
    /// batch's size (issue 16, item 3). Nothing here names an instance as
    /// terminated: `observeDepartures` does, from what the next polls
    /// (and TerminateInstances' answer) confirm.
    func retire(
        _ instances: [ObservedInstance], keeping kept: [ObservedInstance], desiredAfter: Int,
        method: RetirementMethod, group state: AutoScalingGroup, departures: inout Departures,
        direction: Direction, observer: GroupObserver, replacing: Bool = false
    ) throws {
        switch method {
        case .scaleIn:
            try retireByScaleIn(
                instances, keeping: kept, desiredAfter: desiredAfter, group: state, direction: direction)
        case .detachAndTerminate:
            try retireByDetaching(
                instances, departures: &departures, direction: direction, observer: observer, replacing: replacing)
        }
    }

    /// Scale-in protection on the instances kept, then the desired capacity
    /// lowered: the group's own scale-in picks which unprotected (old)
    /// instances go, and a termination lifecycle hook holds each in
    /// `Terminating:Wait` until it is done ("Use instance scale-in
    /// protection" and "How lifecycle hooks work", EC2 Auto Scaling user
    /// guide). Old instances that are protected lose it first, or the group
    /// could not pick them. Both calls set a state (SetInstanceProtection,
    /// SetDesiredCapacity with an absolute value), so they are safe to send
    /// again, and a run killed between them does them again.
    private func retireByScaleIn(
        _ instances: [ObservedInstance], keeping kept: [ObservedInstance], desiredAfter: Int,
        group state: AutoScalingGroup, direction: Direction
    ) throws {
        let unprotect = instances.filter(\.protectedFromScaleIn).map(\.id)
        if !unprotect.isEmpty {
            try client.setInstanceProtection(group, unprotect, protected: false)
            log.line(
                "rotate: \(direction.label): removed scale-in protection from \(unprotect.joined(separator: ", "))")
        }
        let protect = kept.filter { !$0.protectedFromScaleIn }.map(\.id)
        if !protect.isEmpty {
            try client.setInstanceProtection(group, protect, protected: true)
        }
        try client.setDesiredCapacity(group, desiredAfter)
        log.line(
            """
            rotate: \(direction.label): \(kept.count) instance(s) on the release scale-in protected, \
            desired capacity lowered to \(desiredAfter): the group retires \(instances.count) old instance(s)
            """
        )
    }

    /// Tags the instances (`kiln:retiring`, so a run killed after the detach
    /// can still find them), then detaches them with the decrement. A failed
    /// DetachInstances may have taken effect (it is sent once): the group is
    /// read back, and only what it still holds is sent again, under the
    /// retry policy. They are terminated once the group no longer lists
    /// them (`observeDepartures`): AWS deregisters a detaching instance from
    /// the group's target groups first (API Reference, DetachInstances).
    ///
    /// `replacing` (`Rollout.launchReplacing`): detached without the
    /// decrement, so that the group launches the next batch in their place.
    /// A run killed after it finds them by the tag outside the group.
    private func retireByDetaching(
        _ instances: [ObservedInstance], departures: inout Departures, direction: Direction,
        observer: GroupObserver, replacing: Bool = false
    ) throws {
        try markRetiring(instances, departures: &departures)
        var remaining = instances
        var attempt = 0
        while !remaining.isEmpty {
            attempt += 1
            do {
                _ = try client.detachInstances(
                    group, remaining.map(\.id), shouldDecrementDesiredCapacity: !replacing)
                for instance in remaining { departures.detached[instance.id] = instance }
                let effect =
                    replacing
                    ? "the group launching \(remaining.count) in their place"
                    : "the desired capacity lowered by \(remaining.count)"
                log.line(
                    """
                    rotate: \(direction.label): detached \(remaining.map(\.id).joined(separator: ", ")) \
                    from \(group), \(effect)
                    """
                )
                return
            } catch {
                // Read back before acting again: which of them did the group let go?
                let held = Set(try observer.poll().instances.map(\.id))
                let gone = remaining.filter { !held.contains($0.id) }
                for instance in gone { departures.detached[instance.id] = instance }
                if !gone.isEmpty {
                    log.line(
                        """
                        rotate: \(direction.label): detached \(gone.map(\.id).joined(separator: ", ")): \
                        the call failed but the group no longer holds them
                        """
                    )
                }
                remaining.removeAll { !held.contains($0.id) }
                if remaining.isEmpty { return }
                log.warning("rotate: \(direction.label): detaching from \(group) failed: \(error)")
                let transient = (error as? any ExitStatusProviding)?.exitStatus == .temporaryFailure
                guard transient, attempt < client.retry.maxAttempts else { throw error }
                client.retry.sleep(client.retry.delay(after: attempt))
            }
        }
    }

    /// Tags instances `kiln:retiring` (with this group) that this run has
    /// not tagged yet. A rotation marks every old instance once, when it
    /// starts or resumes (one CreateTags, up to 1000 resource IDs a call: EC2
    /// API Reference, CreateTags), rather than each batch before its detach:
    /// a run killed after any detach finds what it detached and did not
    /// terminate by the tag outside the group (`terminateLeftDetached`),
    /// and a tagged instance still in the group is only still to retire.
    func markRetiring(_ instances: [ObservedInstance], departures: inout Departures) throws {
        let ids = instances.map(\.id).filter { !departures.marked.contains($0) }
        var start = 0
        while start < ids.count {
            let chunk = Array(ids[start..<min(start + 1000, ids.count)])
            start += chunk.count
            try client.createTags(resources: chunk, tags: [KilnTag.retiring: group])
            departures.marked.formUnion(chunk)
        }
    }

    /// What a poll says of the retired instances: detached ones the group no
    /// longer lists are terminated (one TerminateInstances), old ones the
    /// group's scale-in picked are named as leaving, and ones gone from the
    /// group as terminated. Returns how many are still leaving (for
    /// `RolloutObservation.leaving`).
    func observeDepartures(
        _ instances: [ObservedInstance], release: String, departures: inout Departures,
        report: inout RotationReport, direction: Direction
    ) throws -> Int {
        let held = Dictionary(instances.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let outOfGroup = departures.detached.values.filter { held[$0.id] == nil }.sorted { $0.id < $1.id }
        if !outOfGroup.isEmpty {
            try terminate(outOfGroup, report: &report, direction: direction)
            for instance in outOfGroup { departures.detached[instance.id] = nil }
        }
        for (id, instance) in departures.lastOld.sorted(by: { $0.key < $1.key })
        where departures.detached[id] == nil && !report.terminated.contains(id) {
            if let now = held[id], now.lifecycleState.isTerminating {
                if departures.announced.insert(id).inserted {
                    let hook = now.lifecycleState.isWaitingOnHook ? ": a lifecycle hook holds it" : ""
                    let state = "\(now.lifecycleState)\(hook)"
                    log.line("rotate: \(direction.label): \(id) (\(instance.release)) is leaving, \(state)")
                }
            } else if held[id] == nil {
                report.terminated.append(id)
                log.line("rotate: \(direction.label): terminated \(id) (\(instance.release)), gone from \(group)")
            }
        }
        let terminating = instances.filter(\.lifecycleState.isTerminating)
        // Still leaving ones stay watched until they are gone.
        departures.lastOld = Dictionary(
            (instances.filter { $0.release != release && !isRetiredDetached($0, departures) } + terminating).map {
                ($0.id, departures.lastOld[$0.id] ?? $0)
            }, uniquingKeysWith: { first, _ in first })
        return terminating.count + departures.detached.count
    }

    private func isRetiredDetached(_ instance: ObservedInstance, _ departures: Departures) -> Bool {
        departures.detached[instance.id] != nil
    }

    /// One TerminateInstances for instances out of the group (EC2 API
    /// Reference: up to 1000 instance IDs a call; idempotent, "if you
    /// terminate an instance more than once, each call succeeds"; and if one
    /// ID is wrong, "none of the instances are terminated"). The log names
    /// what the answer says is shutting down or terminated.
    private func terminate(
        _ instances: [ObservedInstance], report: inout RotationReport, direction: Direction
    ) throws {
        var start = 0
        while start < instances.count {
            let chunk = Array(instances[start..<min(start + 1000, instances.count)])
            start += chunk.count
            let changes = try client.terminateInstances(chunk.map(\.id))
            let release = Dictionary(chunk.map { ($0.id, $0.release) }, uniquingKeysWith: { first, _ in first })
            for change in changes.sorted(by: { $0.instanceID < $1.instanceID })
            where change.currentState == InstanceState.shuttingDown.rawValue
                || change.currentState == InstanceState.terminated.rawValue
            {
                report.terminated.append(change.instanceID)
                log.line(
                    """
                    rotate: \(direction.label): terminated \(change.instanceID) \
                    (\(release[change.instanceID] ?? "unknown")), detached from \(group)
                    """
                )
            }
        }
    }

    /// Instances a killed run detached and did not terminate: tagged
    /// `kiln:retiring` with this group, running or stopped, and no longer in
    /// the group (one DescribeInstances). Terminated now. A tagged instance
    /// still in the group (killed between the tag and the detach) is left
    /// to the rotation, and its tag is removed when the rotation is over
    /// (`atEnd`), so that nothing Kiln later finds outside the group by
    /// that tag is an instance it did not detach.
    func terminateLeftDetached(
        holding members: Set<String>, report: inout RotationReport, direction: Direction, atEnd: Bool
    ) throws {
        let tagged = try client.describeInstances(filters: [
            (name: "tag:\(KilnTag.retiring)", values: [group]),
            (name: "instance-state-name", values: ["pending", "running", "stopping", "stopped"]),
        ])
        let left = tagged.filter { !members.contains($0.id) }
        if !left.isEmpty {
            log.line(
                """
                rotate: \(left.count) instance(s) detached from \(group) by an earlier run and not terminated: \
                \(left.map(\.id).sorted().joined(separator: ", "))
                """
            )
            try terminate(
                left.map { instance in
                    ObservedInstance(
                        id: instance.id, lifecycleState: .detached, healthStatus: .healthy,
                        release: instance.tags[KilnTag.release] ?? "image:\(instance.imageID)",
                        imageID: instance.imageID, privateIP: nil, publicIP: nil, privateDNS: nil, targetHealth: [:])
                }, report: &report, direction: direction)
        }
        let kept = tagged.filter { members.contains($0.id) }.map(\.id)
        if atEnd && !kept.isEmpty { try client.deleteTags(resources: kept, keys: [KilnTag.retiring]) }
    }

    /// The last phase's share of the retirement (one DescribeAutoScalingGroups):
    /// what a killed run left detached is terminated; or the scale-in
    /// protection this rotation put on instances is lifted, unless the group
    /// protects every new instance itself (`NewInstancesProtectedFromScaleIn`,
    /// the user's choice).
    func finishRetirement(_ method: RetirementMethod, report: inout RotationReport) throws {
        guard let state = try client.describeAutoScalingGroups(names: [group]).first else { return }
        if method == .detachAndTerminate {
            let members = Set(state.instances.map(\.id))
            try terminateLeftDetached(holding: members, report: &report, direction: .forward, atEnd: true)
            return
        }
        guard !state.newInstancesProtectedFromScaleIn else { return }
        let protected = state.instances.filter(\.protectedFromScaleIn).map(\.id)
        if !protected.isEmpty {
            try client.setInstanceProtection(group, protected, protected: false)
            log.line("rotate: lifted the scale-in protection the rotation put on \(protected.count) instance(s)")
        }
    }
}
