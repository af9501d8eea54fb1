//! Examples grouped by task, in a deterministic task order.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::Example;

/// One task's examples, in the order the source listed them (that order breaks timestamp ties
/// in [`crate::split`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    name: String,
    examples: Vec<Example>,
}

impl Task {
    /// The task's id (`Example::task` of every example in it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The task's examples, in source order; never empty.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }
}

/// Many tasks' examples, grouped by task.
///
/// Tasks are ordered by [`task_order`]: ids made only of digits first, by numeric value (so
/// MovieLens users come 1, 2, …, 943), then the rest lexicographically. The order depends only
/// on the set of task ids, never on the order rows arrived in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskDataset {
    tasks: Vec<Task>,
}

impl TaskDataset {
    /// Groups `examples` by their `task`, keeping each task's examples in iteration order.
    pub fn from_examples(examples: impl IntoIterator<Item = Example>) -> Self {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut tasks: Vec<Task> = Vec::new();
        for example in examples {
            match index.get(&example.task) {
                Some(&i) => tasks[i].examples.push(example),
                None => {
                    index.insert(example.task.clone(), tasks.len());
                    tasks.push(Task {
                        name: example.task.clone(),
                        examples: vec![example],
                    });
                }
            }
        }
        tasks.sort_by(|a, b| task_order(&a.name, &b.name));
        TaskDataset { tasks }
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Number of examples over all tasks.
    pub fn num_examples(&self) -> usize {
        self.tasks.iter().map(|t| t.examples.len()).sum()
    }

    /// The tasks, in [`task_order`].
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The task named `name`, if present.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks
            .binary_search_by(|t| task_order(&t.name, name))
            .ok()
            .map(|i| &self.tasks[i])
    }

    /// The task ids, in [`task_order`].
    pub fn task_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.tasks.iter().map(|t| t.name.as_str())
    }

    /// All examples, task after task.
    pub fn examples(&self) -> impl Iterator<Item = &Example> + '_ {
        self.tasks.iter().flat_map(|t| t.examples.iter())
    }
}

/// The order of task ids in a [`TaskDataset`]: all-digit ids first, by numeric value (ties,
/// such as `"01"` and `"1"`, by string); then every other id by string.
pub fn task_order(a: &str, b: &str) -> Ordering {
    fn numeric(s: &str) -> Option<u128> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(task: &str, text: &str) -> Example {
        Example {
            task: task.into(),
            text: text.into(),
            label: 0.0,
            timestamp: None,
        }
    }

    #[test]
    fn groups_by_task_in_deterministic_order() {
        let rows = [
            ex("10", "a"),
            ex("b", "b"),
            ex("2", "c"),
            ex("10", "d"),
            ex("a", "e"),
        ];
        let ds = TaskDataset::from_examples(rows.clone());
        assert_eq!(ds.task_names().collect::<Vec<_>>(), ["2", "10", "a", "b"]);
        assert_eq!(ds.len(), 4);
        assert_eq!(ds.num_examples(), 5);
        let texts: Vec<_> = ds
            .task("10")
            .unwrap()
            .examples()
            .iter()
            .map(|e| e.text.as_str())
            .collect();
        assert_eq!(texts, ["a", "d"], "source order kept within a task");
        assert!(ds.task("missing").is_none());

        let reversed = TaskDataset::from_examples(rows.into_iter().rev());
        assert_eq!(
            reversed.task_names().collect::<Vec<_>>(),
            ds.task_names().collect::<Vec<_>>()
        );
    }

    #[test]
    fn task_order_is_numeric_for_digit_ids() {
        assert_eq!(task_order("9", "10"), Ordering::Less);
        assert_eq!(task_order("1", "01"), Ordering::Greater);
        assert_eq!(task_order("99", "a"), Ordering::Less);
        assert_eq!(task_order("b", "a"), Ordering::Greater);
    }
}
