// Intrusive doubly linked list: the element carries its own node, so queue
// operations never allocate (they run with interrupts off, in the scheduler
// and in interrupt handlers).
//
// The Link policy maps between an element and its node. It is a class with
// two static functions instead of a pointer-to-member, so a list of T can be
// declared while T is still incomplete (a thread holds wait queues of
// threads).
#pragma once

#include <stddef.h>

struct list_node {
    list_node* prev = nullptr;
    list_node* next = nullptr;
    bool linked() const { return next != nullptr; }
};

// The Link policy for a node that is a member of a complete type.
template <class T, list_node T::*Member>
struct member_link {
    static list_node* node(T* t) { return &(t->*Member); }
    static T* owner(list_node* n)
    {
        const size_t off = reinterpret_cast<size_t>(&(static_cast<T*>(nullptr)->*Member));
        return reinterpret_cast<T*>(reinterpret_cast<char*>(n) - off);
    }
};

template <class T, class Link>
class intrusive_list {
public:
    // constexpr: a list in a static object (struct cpu) is ready before any
    // constructor runs, with no entry in .init_array.
    constexpr intrusive_list() : head_{&head_, &head_} {}
    intrusive_list(const intrusive_list&) = delete;
    intrusive_list& operator=(const intrusive_list&) = delete;

    bool empty() const { return head_.next == &head_; }
    size_t size() const { return size_; }

    T* front() const { return empty() ? nullptr : Link::owner(head_.next); }
    T* back() const { return empty() ? nullptr : Link::owner(head_.prev); }

    void push_back(T* t) { link_before(const_cast<list_node*>(&head_), Link::node(t)); }
    void push_front(T* t) { link_before(head_.next, Link::node(t)); }

    // Insert t before pos (nullptr: at the end).
    void insert_before(T* pos, T* t) { link_before(pos ? Link::node(pos) : &head_, Link::node(t)); }

    T* pop_front()
    {
        if (empty()) {
            return nullptr;
        }
        T* t = Link::owner(head_.next);
        remove(t);
        return t;
    }

    void remove(T* t)
    {
        list_node* n = Link::node(t);
        n->prev->next = n->next;
        n->next->prev = n->prev;
        n->prev = n->next = nullptr;
        size_--;
    }

    // Iteration: for (T* t = l.front(); t; t = l.next(t))
    T* next(T* t) const
    {
        list_node* n = Link::node(t)->next;
        return n == &head_ ? nullptr : Link::owner(n);
    }
    T* prev(T* t) const
    {
        list_node* n = Link::node(t)->prev;
        return n == &head_ ? nullptr : Link::owner(n);
    }

private:
    void link_before(list_node* pos, list_node* n)
    {
        n->next = pos;
        n->prev = pos->prev;
        pos->prev->next = n;
        pos->prev = n;
        size_++;
    }

    list_node head_;
    size_t size_ = 0;
};
